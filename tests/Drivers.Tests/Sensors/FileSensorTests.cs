using Pinhole.Drivers.Sensors;
using Pinhole.Testing.Time;

namespace Pinhole.Drivers.Tests.Sensors;

// Real files in a temp directory, laid out and filled the way the kernel's drivers fill them.
public sealed class FileSensorTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sensors-");
    private readonly ManualTimeProvider _time = new();

    public void Dispose() => _dir.Delete(true);

    private string Write(string relative, string content)
    {
        var path = Path.Combine(_dir.FullName, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Thermal_zone_in_millidegrees_scales_to_degrees_with_unit_and_timestamp()
    {
        var path = Write("thermal_zone0/temp", "48312\n");
        var sensor = FileSensor.Create(path, 0.001, 0, "°C", _time);
        Assert.IsType<NumericFileSensor>(sensor);
        Assert.True(sensor.TryRead(out var reading, out var fault));
        Assert.Null(fault);
        Assert.Equal(48.312, reading.Value, 9);
        Assert.Equal("°C", reading.Unit);
        Assert.Equal(_time.GetUtcNow(), reading.Timestamp);
    }

    [Theory]
    [InlineData("in_temp_input", "23125\n", 0.001, 0.0, 23.125)]
    [InlineData("in_humidityrelative_input", "45500\n", 0.001, 0.0, 45.5)]
    [InlineData("in_pressure_input", "101.325000\n", 1.0, 0.0, 101.325)]
    [InlineData("temp1_input", "-4500\n", 0.001, 0.5, -4.0)]
    public void Iio_and_hwmon_processed_values(string file, string content, double scale, double offset, double expected)
    {
        var sensor = FileSensor.Create(Write("iio:device0/" + file, content), scale, offset, "u", _time);
        Assert.True(sensor.TryRead(out var reading, out _));
        Assert.Equal(expected, reading.Value, 9);
    }

    [Fact]
    public void Iio_raw_channel_applies_its_sibling_offset_and_scale_before_ours()
    {
        var raw = Write("iio:device1/in_voltage0_raw", "1000\n");
        Write("iio:device1/in_voltage0_scale", "0.500000\n");
        Write("iio:device1/in_voltage0_offset", "-10\n");
        var sensor = FileSensor.Create(raw, 0.001, 0, "V", _time);
        Assert.IsType<IioRawSensor>(sensor);
        Assert.True(sensor.TryRead(out var reading, out _));
        Assert.Equal((1000 - 10) * 0.5 * 0.001, reading.Value, 12);

        File.Delete(Path.Combine(_dir.FullName, "iio:device1/in_voltage0_offset"));
        File.Delete(Path.Combine(_dir.FullName, "iio:device1/in_voltage0_scale"));
        Assert.True(sensor.TryRead(out reading, out _));
        Assert.Equal(1.0, reading.Value, 12);
    }

    [Fact]
    public void W1_slave_with_crc_YES_gives_millidegrees()
    {
        var path = Write("28-00000a1b2c3d/w1_slave",
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n");
        var sensor = FileSensor.Create(path, 0.001, 0, "°C", _time);
        Assert.IsType<W1ThermSensor>(sensor);
        Assert.True(sensor.TryRead(out var reading, out _));
        Assert.Equal(23.125, reading.Value, 9);
    }

    [Fact]
    public void W1_slave_negative_temperature()
    {
        var path = Write("28-1/w1_slave", "5e ff 4b 46 7f ff 0c 10 1c : crc=1c YES\n5e ff 4b 46 7f ff 0c 10 1c t=-10125\n");
        Assert.True(FileSensor.Create(path, 0.001, 0, "°C", _time).TryRead(out var reading, out _));
        Assert.Equal(-10.125, reading.Value, 9);
    }

    [Fact]
    public void W1_slave_with_crc_NO_is_a_crc_fault()
    {
        var path = Write("28-2/w1_slave", "72 01 4b 46 7f ff 0e 10 57 : crc=ff NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n");
        Assert.False(FileSensor.Create(path, 0.001, 0, "°C", _time).TryRead(out _, out var fault));
        Assert.Equal(SensorFaultKind.CrcError, fault!.Kind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n")]
    [InlineData("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57\n")]
    [InlineData("72 01 4b 46 7f ff 0e 10 57 : crc=57 MAYBE\n72 01 4b 46 7f ff 0e 10 57 t=23125\n")]
    public void W1_slave_in_a_wrong_shape_is_unparsable(string content)
    {
        var path = Write("28-3/w1_slave", content);
        Assert.False(FileSensor.Create(path, 0.001, 0, "°C", _time).TryRead(out _, out var fault));
        Assert.Equal(SensorFaultKind.Unparsable, fault!.Kind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc\n")]
    [InlineData("12 34\n")]
    [InlineData("NaN\n")]
    [InlineData("1e400\n")]
    public void Garbage_is_unparsable_not_a_NaN(string content)
    {
        var sensor = FileSensor.Create(Write("hwmon0/temp2_input", content), 1, 0, "", _time);
        Assert.False(sensor.TryRead(out var reading, out var fault));
        Assert.Equal(SensorFaultKind.Unparsable, fault!.Kind);
        Assert.Equal(default, reading);
    }

    [Fact]
    public void Missing_file_is_a_missing_fault_and_a_later_file_reads()
    {
        var path = Path.Combine(_dir.FullName, "gone", "temp");
        var sensor = FileSensor.Create(path, 0.001, 0, "°C", _time);
        Assert.False(sensor.TryRead(out _, out var fault));
        Assert.Equal(SensorFaultKind.Missing, fault!.Kind);
        Assert.Contains(path, fault.Detail, StringComparison.Ordinal);
        Write("gone/temp", "1000");
        Assert.True(sensor.TryRead(out var reading, out fault));
        Assert.Null(fault);
        Assert.Equal(1.0, reading.Value, 9);
    }

    [Fact]
    public void A_directory_in_place_of_the_file_is_unreadable()
    {
        var path = Path.Combine(_dir.FullName, "adir");
        Directory.CreateDirectory(path);
        Assert.False(FileSensor.Create(path, 1, 0, "", _time).TryRead(out _, out var fault));
        Assert.Equal(SensorFaultKind.Unreadable, fault!.Kind);
    }
}
