using System.Device.Gpio;
using System.Device.I2c;
using System.Runtime.InteropServices;

namespace Pinhole.Drivers.Sensors;

/// <summary>One physical quantity a chip measures, published as a reading of its own.</summary>
/// <param name="Name">The quantity, e.g. <c>temperature</c>; the reading is named <c>SENSOR_NAME</c>.</param>
/// <param name="Unit">Unit of the values, e.g. <c>°C</c>, <c>%</c>, <c>hPa</c>, <c>V</c>.</param>
/// <param name="DeviceClass">Home Assistant's <c>device_class</c>, when one fits.</param>
public sealed record SensorQuantity(string Name, string Unit, string? DeviceClass)
{
    /// <summary>Degrees Celsius.</summary>
    public static SensorQuantity Temperature { get; } = new("temperature", "°C", "temperature");

    /// <summary>Relative humidity in percent.</summary>
    public static SensorQuantity Humidity { get; } = new("humidity", "%", "humidity");

    /// <summary>Barometric pressure in hectopascals.</summary>
    public static SensorQuantity Pressure { get; } = new("pressure", "hPa", "pressure");

    /// <summary>A voltage input <c>aN</c> of an ADC.</summary>
    public static SensorQuantity Voltage(int input) => new($"a{input}", "V", "voltage");
}

/// <summary>
/// A sensor chip on a bus (I2C, GPIO, 1-Wire) that measures one or more quantities per read,
/// through an Iot.Device.Bindings binding. The chip is opened on the first read and again after a
/// failed one (so an unplugged sensor comes back by itself); every failure is returned as a
/// <see cref="SensorFault"/>, never thrown.
/// </summary>
/// <remarks>Owns the bus device it opened; dispose to release it.</remarks>
public abstract class ChipSensor : IDisposable
{
    private bool _open;

    /// <summary>Creates the sensor; <paramref name="description"/> (e.g. <c>bme280 on i2c-1 at 0x76</c>) starts fault messages.</summary>
    protected ChipSensor(string description)
    {
        Description = description;
    }

    /// <summary>Says which chip on which bus, for fault messages.</summary>
    public string Description { get; }

    /// <summary>What a read returns, in the order of the values.</summary>
    public abstract IReadOnlyList<SensorQuantity> Quantities { get; }

    /// <summary>Reads every quantity into <paramref name="values"/> (one per <see cref="Quantities"/> entry, all finite).</summary>
    public bool TryRead(Span<double> values, out SensorFault? fault)
    {
        if (values.Length < Quantities.Count) throw new ArgumentException($"room for {Quantities.Count} values needed", nameof(values));
        try
        {
            if (!_open)
            {
                Open();
                _open = true;
            }
            if (!TryReadCore(values, out fault))
                return false;
            for (var i = 0; i < Quantities.Count; i++)
            {
                if (!double.IsFinite(values[i]))
                {
                    fault = new SensorFault(SensorFaultKind.Unparsable, $"{Description}: {Quantities[i].Name} is not a number");
                    return false;
                }
            }
            return true;
        }
        catch (Exception e) when (IsHardwareFailure(e))
        {
            CloseQuietly();
            fault = new SensorFault(KindOf(e), $"{Description}: {e.Message}");
            return false;
        }
    }

    /// <summary>Opens the bus device and the binding.</summary>
    protected abstract void Open();

    /// <summary>Reads the values from the open binding; exceptions are turned into faults.</summary>
    protected abstract bool TryReadCore(Span<double> values, out SensorFault? fault);

    /// <summary>Releases the binding and its bus device; called after a failure and on dispose.</summary>
    protected abstract void Close();

    /// <inheritdoc />
    public void Dispose()
    {
        CloseQuietly();
        GC.SuppressFinalize(this);
    }

    private void CloseQuietly()
    {
        _open = false;
        try
        {
            Close();
        }
        catch (Exception e) when (IsHardwareFailure(e))
        {
            // Closing a device that already failed: nothing more to do.
        }
    }

    private static bool IsHardwareFailure(Exception e) =>
        e is IOException or UnauthorizedAccessException or TimeoutException or InvalidOperationException
            or DllNotFoundException or PlatformNotSupportedException or ExternalException or ArgumentException;

    private static SensorFaultKind KindOf(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException or DllNotFoundException or PlatformNotSupportedException => SensorFaultKind.Missing,
        _ => SensorFaultKind.Unreadable,
    };
}

/// <summary>Opens the buses chip sensors sit on; tests substitute fakes.</summary>
public sealed class SensorBuses
{
    /// <summary>The real buses of this machine: <c>/dev/i2c-N</c>, <c>/dev/gpiochipN</c> (libgpiod), <c>/sys/bus/w1/devices</c>.</summary>
    public static SensorBuses System { get; } = new();

    /// <summary>Opens the I2C device at (bus, 7-bit address).</summary>
    public Func<int, int, I2cDevice> OpenI2c { get; init; } = OpenSystemI2c;

    /// <summary>Opens a GPIO chip by path as a controller.</summary>
    public Func<string, GpioController> OpenGpioChip { get; init; } = Gpio.GpioChip.Open;

    /// <summary>Where the kernel's <c>w1</c> bus lists its devices.</summary>
    public string W1Devices { get; init; } = "/sys/bus/w1/devices";

    private static I2cDevice OpenSystemI2c(int bus, int address)
    {
        var path = $"/dev/i2c-{bus}";
        if (!File.Exists(path))
            throw new FileNotFoundException($"no I2C bus {path} (is I2C enabled, e.g. dtparam=i2c_arm=on?)", path);
        return I2cDevice.Create(new I2cConnectionSettings(bus, address));
    }
}
