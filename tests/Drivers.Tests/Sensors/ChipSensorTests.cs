using System.Device.Gpio;
using Pinhole.Drivers.Gpio;
using Pinhole.Drivers.Sensors;
using Pinhole.Testing.Sensors;

namespace Pinhole.Drivers.Tests.Sensors;

/// <summary>Each Iot.Device.Bindings chip driven through a fake bus that holds the chip's registers.</summary>
public sealed class ChipSensorTests : IDisposable
{
    private readonly DirectoryInfo _w1 = Directory.CreateTempSubdirectory("w1-");

    public void Dispose() => _w1.Delete(true);

    private static double[] Read(ChipSensor sensor)
    {
        var values = new double[sensor.Quantities.Count];
        Assert.True(sensor.TryRead(values, out var fault), fault?.ToString());
        Assert.Null(fault);
        return values;
    }

    [Fact]
    public void Bme280_reads_the_datasheet_example_as_temperature_humidity_and_pressure()
    {
        var chip = new FakeBmx280(humidity: true);
        using var sensor = new Bme280Sensor(() => chip, "bme280 on /dev/i2c-1 at 0x76");
        Assert.Equal(["temperature", "humidity", "pressure"], sensor.Quantities.Select(q => q.Name));
        Assert.Equal(["°C", "%", "hPa"], sensor.Quantities.Select(q => q.Unit));
        var values = Read(sensor);
        Assert.Equal(25.08, values[0], 2);   // the datasheet's 25.08 °C
        Assert.Equal(FakeBmx280.ExpectedTemperature, values[0], 6);
        Assert.Equal(FakeBmx280.ExpectedHumidity, values[1], 6);
        Assert.Equal(1006.53, values[2], 2); // the datasheet's 100653 Pa
        Assert.Equal(FakeBmx280.ExpectedPressure, values[2], 6);
        // Forced mode: the binding wrote ctrl_meas (0xF4) with mode bits 10 to start the measurement.
        Assert.Contains(chip.Writes, w => w.Length == 2 && w[0] == 0xF4 && (w[1] & 0x03) == 0b10);
    }

    [Fact]
    public void Bmp280_reads_temperature_and_pressure_only()
    {
        var chip = new FakeBmx280(humidity: false);
        using var sensor = new Bmp280Sensor(() => chip, "bmp280");
        Assert.Equal(["temperature", "pressure"], sensor.Quantities.Select(q => q.Name));
        var values = Read(sensor);
        Assert.Equal(FakeBmx280.ExpectedTemperature, values[0], 6);
        Assert.Equal(FakeBmx280.ExpectedPressure, values[1], 6);
    }

    [Fact]
    public void A_bmp280_where_a_bme280_is_configured_is_a_fault_naming_the_chip_id()
    {
        using var sensor = new Bme280Sensor(() => new FakeBmx280(humidity: false), "bme280 on /dev/i2c-1 at 0x76");
        Assert.False(sensor.TryRead(new double[3], out var fault));
        Assert.Equal(SensorFaultKind.Unreadable, fault!.Kind);
        Assert.StartsWith("bme280 on /dev/i2c-1 at 0x76: ", fault.Detail, StringComparison.Ordinal);
        Assert.Contains("88", fault.Detail, StringComparison.Ordinal); // found chip id 0x58 = 88
    }

    [Fact]
    public void Sht3x_reads_crc_checked_words_and_a_bad_crc_is_a_fault_not_a_stale_value()
    {
        var chip = new FakeSht3x { RawTemperature = 0x6666, RawHumidity = 0x8000 };
        using var sensor = new Sht3xSensor(() => chip, "sht3x on /dev/i2c-1 at 0x44");
        Assert.Equal(0x92, Sht3xSensor.Crc8([0xBE, 0xEF])); // datasheet example
        var values = Read(sensor);
        Assert.Equal(25.0, values[0], 6); // -45 + 175 * 26214 / 65535
        Assert.Equal(50.0, values[1], 6); // 100 * 32768 / 65535, rounded to 0.1 by the binding
        Assert.Contains((ushort)0x30A2, chip.Commands); // soft reset when opened

        chip.RawTemperature = 0x7000;
        chip.CorruptCrc = true;
        Assert.False(sensor.TryRead(new double[2], out var fault));
        Assert.Equal(SensorFaultKind.CrcError, fault!.Kind);

        chip.CorruptCrc = false;
        values = Read(sensor);
        Assert.Equal(Math.Round(-45 + 175 * 0x7000 / 65535.0, 1), values[0], 6);
    }

    [Fact]
    public void Ads1115_converts_each_single_ended_input_to_volts()
    {
        var chip = new FakeAds1115();
        chip.Inputs[0] = 8000;   // 8000 * 4.096 / 32768 = 1.0 V
        chip.Inputs[1] = 16000;  // 2.0 V
        chip.Inputs[2] = 4000;   // 0.5 V
        chip.Inputs[3] = 32767;  // full scale
        using var sensor = new Ads1115Sensor(() => chip, "ads1115");
        Assert.Equal(["a0", "a1", "a2", "a3"], sensor.Quantities.Select(q => q.Name));
        Assert.All(sensor.Quantities, q => Assert.Equal("V", q.Unit));
        var values = Read(sensor);
        Assert.Equal(1.0, values[0], 9);
        Assert.Equal(2.0, values[1], 9);
        Assert.Equal(0.5, values[2], 9);
        Assert.Equal(32767 * 4.096 / 32768, values[3], 9);
        Assert.All(chip.Conversions, n => Assert.True(n >= 1));

        chip.Inputs[0] = 12000;
        Assert.Equal(1.5, Read(sensor)[0], 9); // single-shot: a new conversion every read
    }

    [Fact]
    public void Ds18b20_reads_w1_slave_under_the_configured_root_and_a_crc_no_is_a_fault()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_w1.FullName, "28-0316a2792dff"));
        var file = Path.Combine(dir.FullName, "w1_slave");
        File.WriteAllText(file, "7f 01 4b 46 7f ff 01 10 33 : crc=33 YES\n7f 01 4b 46 7f ff 01 10 33 t=23937\n");
        using var sensor = new Ds18b20Sensor(_w1.FullName, "28-0316a2792dff");
        Assert.Equal(["temperature"], sensor.Quantities.Select(q => q.Name));
        Assert.Equal(23.937, Read(sensor)[0], 9);

        File.WriteAllText(file, "7f 01 4b 46 7f ff 01 10 33 : crc=00 NO\n7f 01 4b 46 7f ff 01 10 33 t=23937\n");
        Assert.False(sensor.TryRead(new double[1], out var fault));
        Assert.Equal(SensorFaultKind.CrcError, fault!.Kind);

        using var missing = new Ds18b20Sensor(_w1.FullName, "28-000000000000");
        Assert.False(missing.TryRead(new double[1], out fault));
        Assert.Equal(SensorFaultKind.Missing, fault!.Kind);
    }

    [Fact]
    public void Dht22_reads_humidity_and_temperature_from_its_40_bit_answer()
    {
        // 65.2 %RH (0x028C), -3.1 °C (sign bit + 0x001F), checksum = low byte of the sum.
        byte[] answer = [0x02, 0x8C, 0x80, 0x1F, (byte)((0x02 + 0x8C + 0x80 + 0x1F) & 0xFF)];
        var driver = new FakeDht22Driver(4, answer);
        using var sensor = new Dht22Sensor(() => new GpioController(driver), 4, "dht22 on /dev/gpiochip0 line 4");
        Assert.Equal(["temperature", "humidity"], sensor.Quantities.Select(q => q.Name));
        // A 0 bit is a high phase of one quick read; a preempted test thread can stretch it past the
        // binding's 30 µs and fail the checksum, as a real DHT22 read can fail: allow a few attempts,
        // as the pipeline's next poll would (each after the binding's minimum time between reads).
        var values = new double[2];
        SensorFault? fault = null;
        for (var attempt = 0; attempt < 5 && !sensor.TryRead(values, out fault); attempt++)
            Thread.Sleep(600);
        Assert.True(fault is null, fault?.ToString());
        Assert.Equal(-3.1, values[0], 6);
        Assert.Equal(65.2, values[1], 6);
        Assert.True(driver.Answers >= 1);
    }

    [Fact]
    public void A_dht22_that_never_answers_is_a_fault_not_a_hang_or_a_crash()
    {
        // Silence on the line (no sensor): a fault, and the line is released.
        var driver = new InMemoryGpioDriver(32);
        using var sensor = new Dht22Sensor(() => new GpioController(driver), 4, "dht22 on /dev/gpiochip0 line 4");
        Assert.False(sensor.TryRead(new double[2], out var fault));
        Assert.Equal(SensorFaultKind.CrcError, fault!.Kind);
        Assert.StartsWith("dht22 on /dev/gpiochip0 line 4: ", fault.Detail, StringComparison.Ordinal);
        sensor.Dispose();
        Assert.False(driver.IsLineOpen(4));
    }

    [Fact]
    public void A_bus_that_cannot_be_opened_is_a_missing_fault_and_the_next_read_tries_again()
    {
        var attempts = 0;
        using var sensor = new Bme280Sensor(() =>
        {
            attempts++;
            return attempts == 1 ? throw new FileNotFoundException("no I2C bus /dev/i2c-1") : new FakeBmx280(humidity: true);
        }, "bme280 on /dev/i2c-1 at 0x76");
        Assert.False(sensor.TryRead(new double[3], out var fault));
        Assert.Equal(SensorFaultKind.Missing, fault!.Kind);
        Assert.Contains("/dev/i2c-1", fault.Detail, StringComparison.Ordinal);
        Assert.Equal(FakeBmx280.ExpectedTemperature, Read(sensor)[0], 6);
        Assert.Equal(2, attempts);
    }
}
