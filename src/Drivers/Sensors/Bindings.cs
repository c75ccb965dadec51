using System.Device.Gpio;
using System.Device.I2c;
using Iot.Device.Ads1115;
using Iot.Device.Bmxx80;
using Iot.Device.DHTxx;
using Iot.Device.Sht3x;

namespace Pinhole.Drivers.Sensors;

/// <summary>A Bosch BME280 (temperature, humidity, pressure) on I2C, through <see cref="Bme280"/> in forced mode.</summary>
public sealed class Bme280Sensor(Func<I2cDevice> openDevice, string description) : ChipSensor(description)
{
    private static readonly SensorQuantity[] All = [SensorQuantity.Temperature, SensorQuantity.Humidity, SensorQuantity.Pressure];
    private Bme280? _chip;

    /// <inheritdoc />
    public override IReadOnlyList<SensorQuantity> Quantities => All;

    /// <inheritdoc />
    protected override void Open()
    {
        _chip = new Bme280(openDevice());
        _chip.TemperatureSampling = Sampling.Standard;
        _chip.PressureSampling = Sampling.Standard;
        _chip.HumiditySampling = Sampling.Standard;
    }

    /// <inheritdoc />
    protected override bool TryReadCore(Span<double> values, out SensorFault? fault)
    {
        var r = _chip!.Read();
        fault = null;
        if (r.Temperature is not { } t || r.Humidity is not { } h || r.Pressure is not { } p)
        {
            fault = new SensorFault(SensorFaultKind.Unreadable, $"{Description}: a measurement was skipped");
            return false;
        }
        values[0] = t.DegreesCelsius;
        values[1] = h.Percent;
        values[2] = p.Hectopascals;
        return true;
    }

    /// <inheritdoc />
    protected override void Close()
    {
        _chip?.Dispose();
        _chip = null;
    }
}

/// <summary>A Bosch BMP280 (temperature, pressure) on I2C, through <see cref="Bmp280"/> in forced mode.</summary>
public sealed class Bmp280Sensor(Func<I2cDevice> openDevice, string description) : ChipSensor(description)
{
    private static readonly SensorQuantity[] All = [SensorQuantity.Temperature, SensorQuantity.Pressure];
    private Bmp280? _chip;

    /// <inheritdoc />
    public override IReadOnlyList<SensorQuantity> Quantities => All;

    /// <inheritdoc />
    protected override void Open()
    {
        _chip = new Bmp280(openDevice());
        _chip.TemperatureSampling = Sampling.Standard;
        _chip.PressureSampling = Sampling.Standard;
    }

    /// <inheritdoc />
    protected override bool TryReadCore(Span<double> values, out SensorFault? fault)
    {
        var r = _chip!.Read();
        fault = null;
        if (r.Temperature is not { } t || r.Pressure is not { } p)
        {
            fault = new SensorFault(SensorFaultKind.Unreadable, $"{Description}: a measurement was skipped");
            return false;
        }
        values[0] = t.DegreesCelsius;
        values[1] = p.Hectopascals;
        return true;
    }

    /// <inheritdoc />
    protected override void Close()
    {
        _chip?.Dispose();
        _chip = null;
    }
}

/// <summary>
/// A Sensirion SHT3x (temperature, humidity) on I2C, through <see cref="Sht3x"/>. The binding keeps
/// its previous values when a response fails its CRC; the bus is wrapped so such a response is a
/// <see cref="SensorFaultKind.CrcError"/> instead of a stale reading.
/// </summary>
public sealed class Sht3xSensor(Func<I2cDevice> openDevice, string description) : ChipSensor(description)
{
    private static readonly SensorQuantity[] All = [SensorQuantity.Temperature, SensorQuantity.Humidity];
    private Sht3x? _chip;
    private CrcCheckingDevice? _bus;

    /// <inheritdoc />
    public override IReadOnlyList<SensorQuantity> Quantities => All;

    /// <inheritdoc />
    protected override void Open()
    {
        _bus = new CrcCheckingDevice(openDevice());
        _chip = new Sht3x(_bus);
    }

    /// <inheritdoc />
    protected override bool TryReadCore(Span<double> values, out SensorFault? fault)
    {
        _bus!.CrcFailed = false;
        var t = _chip!.Temperature.DegreesCelsius; // one measurement
        var h = _chip.Humidity.Percent;            // and another
        fault = _bus.CrcFailed ? new SensorFault(SensorFaultKind.CrcError, $"{Description}: CRC check failed") : null;
        values[0] = t;
        values[1] = h;
        return fault is null;
    }

    /// <inheritdoc />
    protected override void Close()
    {
        _chip?.Dispose(); // disposes the bus
        _chip = null;
        _bus = null;
    }

    /// <summary>CRC-8 of the SHT3x (polynomial 0x31, init 0xFF) over two bytes, datasheet section 4.12.</summary>
    public static byte Crc8(ReadOnlySpan<byte> data)
    {
        byte crc = 0xFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
                crc = (crc & 0x80) != 0 ? (byte)((crc << 1) ^ 0x31) : (byte)(crc << 1);
        }
        return crc;
    }

    private sealed class CrcCheckingDevice(I2cDevice inner) : I2cDevice
    {
        public bool CrcFailed { get; set; }

        public override I2cConnectionSettings ConnectionSettings => inner.ConnectionSettings;

        public override byte ReadByte() => inner.ReadByte();

        public override void Read(Span<byte> buffer)
        {
            inner.Read(buffer);
            // A measurement: temperature MSB, LSB, CRC, humidity MSB, LSB, CRC.
            if (buffer.Length == 6 && (Crc8(buffer[..2]) != buffer[2] || Crc8(buffer[3..5]) != buffer[5]))
                CrcFailed = true;
        }

        public override void WriteByte(byte value) => inner.WriteByte(value);

        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

        public override void WriteRead(ReadOnlySpan<byte> writeBuffer, Span<byte> readBuffer) => inner.WriteRead(writeBuffer, readBuffer);

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A TI ADS1115 16-bit ADC on I2C, through <see cref="Ads1115"/>: the four single-ended inputs
/// AIN0..AIN3, each converted once per read (single-shot, ±4.096 V range) and reported in volts as
/// <c>a0</c>..<c>a3</c>.
/// </summary>
public sealed class Ads1115Sensor(Func<I2cDevice> openDevice, string description) : ChipSensor(description)
{
    private static readonly SensorQuantity[] All = [SensorQuantity.Voltage(0), SensorQuantity.Voltage(1), SensorQuantity.Voltage(2), SensorQuantity.Voltage(3)];
    private static readonly InputMultiplexer[] Inputs = [InputMultiplexer.AIN0, InputMultiplexer.AIN1, InputMultiplexer.AIN2, InputMultiplexer.AIN3];
    private Ads1115? _chip;

    /// <inheritdoc />
    public override IReadOnlyList<SensorQuantity> Quantities => All;

    /// <inheritdoc />
    protected override void Open() =>
        _chip = new Ads1115(openDevice(), InputMultiplexer.AIN0, MeasuringRange.FS4096, DataRate.SPS128, DeviceMode.PowerDown);

    /// <inheritdoc />
    protected override bool TryReadCore(Span<double> values, out SensorFault? fault)
    {
        for (var i = 0; i < Inputs.Length; i++)
            values[i] = _chip!.ReadVoltage(Inputs[i]).Volts;
        fault = null;
        return true;
    }

    /// <inheritdoc />
    protected override void Close()
    {
        _chip?.Dispose();
        _chip = null;
    }
}

/// <summary>
/// An Aosong DHT22 / AM2302 (temperature, humidity) on one GPIO line, through <see cref="Dht22"/>.
/// The binding times the chip's pulses by polling the line, which a loaded CPU can miss: a failed
/// read is a fault for this poll, not a broken sensor (the next poll tries again).
/// </summary>
public sealed class Dht22Sensor(Func<GpioController> openChip, int pin, string description) : ChipSensor(description)
{
    private static readonly SensorQuantity[] All = [SensorQuantity.Temperature, SensorQuantity.Humidity];
    private GpioController? _controller;
    private Dht22? _chip;

    /// <inheritdoc />
    public override IReadOnlyList<SensorQuantity> Quantities => All;

    /// <inheritdoc />
    protected override void Open()
    {
        _controller = openChip();
        _chip = new Dht22(pin, _controller, shouldDispose: false);
    }

    /// <inheritdoc />
    protected override bool TryReadCore(Span<double> values, out SensorFault? fault)
    {
        fault = null;
        if (!_chip!.TryReadTemperature(out var t) || !_chip.TryReadHumidity(out var h))
        {
            fault = new SensorFault(SensorFaultKind.CrcError, $"{Description}: no valid answer (timing or checksum)");
            return false;
        }
        values[0] = t.DegreesCelsius;
        values[1] = h.Percent;
        return true;
    }

    /// <inheritdoc />
    protected override void Close()
    {
        _chip?.Dispose();
        _chip = null;
        _controller?.Dispose();
        _controller = null;
    }
}

/// <summary>
/// A Maxim DS18B20 1-Wire thermometer through the kernel's <c>w1_therm</c> driver. Iot.Device.Bindings'
/// <c>OneWireThermometerDevice</c> reads a fixed <c>/sys/bus/w1</c> path, so this reads the same
/// <c>w1_slave</c> file through <see cref="W1ThermSensor"/> (CRC <c>NO</c> is a fault) under a
/// configurable root.
/// </summary>
public sealed class Ds18b20Sensor : ChipSensor
{
    private static readonly SensorQuantity[] All = [SensorQuantity.Temperature];
    private readonly W1ThermSensor _file;

    /// <summary>Reads <c>W1DEVICES/ADDRESS/w1_slave</c>.</summary>
    public Ds18b20Sensor(string w1Devices, string address)
        : base($"ds18b20 {address}")
    {
        _file = new W1ThermSensor(System.IO.Path.Combine(w1Devices, address, "w1_slave"), scale: 0.001, unit: "°C");
    }

    /// <inheritdoc />
    public override IReadOnlyList<SensorQuantity> Quantities => All;

    /// <inheritdoc />
    protected override void Open()
    {
    }

    /// <inheritdoc />
    protected override bool TryReadCore(Span<double> values, out SensorFault? fault)
    {
        if (!_file.TryRead(out var reading, out fault)) return false;
        values[0] = reading.Value;
        return true;
    }

    /// <inheritdoc />
    protected override void Close()
    {
    }
}
