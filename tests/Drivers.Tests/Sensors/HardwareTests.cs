using System.Globalization;
using Pinhole.Drivers.Gpio;
using Pinhole.Drivers.Sensors;

namespace Pinhole.Drivers.Tests.Sensors;

/// <summary>A test that needs an I2C bus (PINHOLE_TEST_I2C_BUS, default 1) with a BME280 at PINHOLE_TEST_BME280 (default 0x76).</summary>
public sealed class I2cBusFactAttribute : FactAttribute
{
    public static int Bus => int.Parse(Environment.GetEnvironmentVariable("PINHOLE_TEST_I2C_BUS") ?? "1", CultureInfo.InvariantCulture);

    public I2cBusFactAttribute()
    {
        if (!File.Exists($"/dev/i2c-{Bus}"))
            Skip = $"no I2C bus at /dev/i2c-{Bus} (set PINHOLE_TEST_I2C_BUS; this kernel has no I2C)";
    }
}

/// <summary>A test that needs the kernel's 1-Wire bus with a DS18B20 (PINHOLE_TEST_DS18B20, else the first 28-* device).</summary>
public sealed class W1BusFactAttribute : FactAttribute
{
    public const string Devices = "/sys/bus/w1/devices";

    public W1BusFactAttribute()
    {
        if (!Directory.Exists(Devices))
            Skip = $"no 1-Wire bus ({Devices} does not exist: w1-gpio/w1_therm not loaded)";
        else if (Address is null)
            Skip = $"no DS18B20 (28-*) under {Devices}";
    }

    public static string? Address =>
        Environment.GetEnvironmentVariable("PINHOLE_TEST_DS18B20")
        ?? (Directory.Exists(Devices) ? Directory.EnumerateDirectories(Devices, "28-*").Select(Path.GetFileName).FirstOrDefault() : null);
}

public sealed class HardwareTests
{
    [I2cBusFact]
    [Trait("Category", "Hardware")]
    public void Reads_a_real_bme280()
    {
        var address = Convert.ToInt32(Environment.GetEnvironmentVariable("PINHOLE_TEST_BME280") ?? "0x76", 16);
        using var sensor = new Bme280Sensor(() => SensorBuses.System.OpenI2c(I2cBusFactAttribute.Bus, address), "bme280");
        var values = new double[3];
        Assert.True(sensor.TryRead(values, out var fault), fault?.ToString());
        Assert.InRange(values[0], -40, 85);   // the chip's operating range, °C
        Assert.InRange(values[1], 0, 100);    // %
        Assert.InRange(values[2], 300, 1100); // hPa
    }

    [W1BusFact]
    [Trait("Category", "Hardware")]
    public void Reads_a_real_ds18b20()
    {
        using var sensor = new Ds18b20Sensor(W1BusFactAttribute.Devices, W1BusFactAttribute.Address!);
        var values = new double[1];
        Assert.True(sensor.TryRead(values, out var fault), fault?.ToString());
        Assert.InRange(values[0], -55, 125);
    }
}
