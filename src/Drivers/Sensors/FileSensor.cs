using System.Globalization;

namespace Pinhole.Drivers.Sensors;

/// <summary>
/// A sensor read from one small file, as Linux exposes them in sysfs: thermal zones, hwmon, IIO,
/// 1-wire. The number found in the file (the raw value) becomes <c>raw * scale + offset</c> in
/// <see cref="Unit"/>. Every failure is returned as a <see cref="SensorFault"/>, never thrown.
/// </summary>
public abstract class FileSensor
{
    /// <summary>Files larger than this are not sensor values (sysfs attributes are at most a page).</summary>
    protected const int MaxFileBytes = 4096;

    private readonly TimeProvider _time;

    /// <summary>Creates a sensor over <paramref name="path"/>.</summary>
    /// <param name="path">The file to read.</param>
    /// <param name="scale">Multiplies the raw value, for example 0.001 for millidegrees.</param>
    /// <param name="offset">Added after scaling.</param>
    /// <param name="unit">Unit of the scaled value.</param>
    /// <param name="timeProvider">Clock for reading timestamps.</param>
    protected FileSensor(string path, double scale, double offset, string unit, TimeProvider? timeProvider)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!double.IsFinite(scale)) throw new ArgumentOutOfRangeException(nameof(scale));
        if (!double.IsFinite(offset)) throw new ArgumentOutOfRangeException(nameof(offset));
        Path = path;
        Scale = scale;
        Offset = offset;
        Unit = unit ?? "";
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>Multiplier applied to the raw value.</summary>
    public double Scale { get; }

    /// <summary>Added after scaling.</summary>
    public double Offset { get; }

    /// <summary>Unit of the readings.</summary>
    public string Unit { get; }

    /// <summary>
    /// Picks the parser for <paramref name="path"/>: the 1-wire <c>w1_slave</c> format by file name,
    /// IIO <c>*_raw</c> with its sibling <c>_scale</c>/<c>_offset</c>, otherwise a plain number.
    /// </summary>
    public static FileSensor Create(string path, double scale = 1.0, double offset = 0.0, string unit = "", TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var name = System.IO.Path.GetFileName(path);
        if (name == "w1_slave")
            return new W1ThermSensor(path, scale, offset, unit, timeProvider);
        if (name.EndsWith("_raw", StringComparison.Ordinal))
            return new IioRawSensor(path, scale, offset, unit, timeProvider);
        return new NumericFileSensor(path, scale, offset, unit, timeProvider);
    }

    /// <summary>Reads the file once.</summary>
    /// <param name="reading">The scaled value with its unit and timestamp, when this returns true.</param>
    /// <param name="fault">Why it failed, when this returns false.</param>
    public bool TryRead(out SensorReading reading, out SensorFault? fault)
    {
        reading = default;
        var now = _time.GetUtcNow();
        if (!TryReadRaw(out var raw, out fault))
            return false;
        var value = raw * Scale + Offset;
        if (!double.IsFinite(value))
        {
            fault = new SensorFault(SensorFaultKind.Unparsable, $"{Path}: value out of range");
            return false;
        }
        reading = new SensorReading(value, Unit, now);
        return true;
    }

    /// <summary>Reads and parses the raw number.</summary>
    protected virtual bool TryReadRaw(out double raw, out SensorFault? fault)
    {
        raw = 0;
        Span<byte> buffer = stackalloc byte[MaxFileBytes];
        if (!TryReadFile(Path, buffer, out var length, out fault))
            return false;
        return TryParseContent(buffer[..length], out raw, out fault);
    }

    /// <summary>Parses the content of the file into the raw number.</summary>
    protected abstract bool TryParseContent(ReadOnlySpan<byte> content, out double raw, out SensorFault? fault);

    /// <summary>Reads a whole small file into <paramref name="buffer"/>, mapping every I/O failure to a fault.</summary>
    protected static bool TryReadFile(string path, Span<byte> buffer, out int length, out SensorFault? fault)
    {
        length = 0;
        fault = null;
        try
        {
            // sysfs reports a size of 4096 for everything, so read until end of file, not to Length.
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            while (length < buffer.Length)
            {
                var n = RandomAccess.Read(handle, buffer[length..], length);
                if (n == 0) return true;
                length += n;
            }
            fault = new SensorFault(SensorFaultKind.Unparsable, $"{path}: larger than {buffer.Length} bytes");
            return false;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            fault = new SensorFault(SensorFaultKind.Missing, $"{path}: no such file");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fault = new SensorFault(SensorFaultKind.Unreadable, $"{path}: {e.Message}");
        }
        return false;
    }

    /// <summary>Parses ASCII text holding one number, ignoring surrounding whitespace.</summary>
    protected static bool TryParseNumber(ReadOnlySpan<byte> text, out double value)
    {
        text = text.Trim(" \t\r\n\0"u8);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
    }

    /// <summary>A short printable excerpt of bad content for a fault message.</summary>
    protected static string Excerpt(ReadOnlySpan<byte> content)
    {
        var text = System.Text.Encoding.ASCII.GetString(content[..Math.Min(content.Length, 40)]);
        return string.Concat(text.Select(c => char.IsControl(c) ? ' ' : c)).Trim();
    }
}

/// <summary>
/// A file holding one number: thermal zones (<c>/sys/class/thermal/thermal_zone0/temp</c>, millidegrees),
/// hwmon (<c>temp1_input</c>), IIO processed values (<c>in_temp_input</c>, <c>in_humidityrelative_input</c>,
/// <c>in_pressure_input</c>), or any other.
/// </summary>
internal sealed class NumericFileSensor : FileSensor
{
    /// <summary>Creates the sensor; see <see cref="FileSensor"/> for the parameters.</summary>
    public NumericFileSensor(string path, double scale = 1.0, double offset = 0.0, string unit = "", TimeProvider? timeProvider = null)
        : base(path, scale, offset, unit, timeProvider)
    {
    }

    /// <inheritdoc />
    protected override bool TryParseContent(ReadOnlySpan<byte> content, out double raw, out SensorFault? fault)
    {
        fault = null;
        if (TryParseNumber(content, out raw))
            return true;
        fault = new SensorFault(SensorFaultKind.Unparsable, $"{Path}: not a number: \"{Excerpt(content)}\"");
        return false;
    }
}

/// <summary>
/// An IIO raw channel (<c>in_voltage0_raw</c>, <c>in_temp_raw</c>): the kernel's value is
/// <c>(raw + _offset) * _scale</c> from the sibling files when they exist (IIO ABI), before this
/// sensor's own scale and offset.
/// </summary>
internal sealed class IioRawSensor : FileSensor
{
    private readonly string _scalePath;
    private readonly string _offsetPath;

    /// <summary>Creates the sensor over a <c>*_raw</c> file; see <see cref="FileSensor"/> for the parameters.</summary>
    public IioRawSensor(string path, double scale = 1.0, double offset = 0.0, string unit = "", TimeProvider? timeProvider = null)
        : base(path, scale, offset, unit, timeProvider)
    {
        if (!path.EndsWith("_raw", StringComparison.Ordinal))
            throw new ArgumentException("an IIO raw channel file name ends in _raw", nameof(path));
        var stem = path[..^"_raw".Length];
        _scalePath = stem + "_scale";
        _offsetPath = stem + "_offset";
    }

    /// <inheritdoc />
    protected override bool TryReadRaw(out double raw, out SensorFault? fault)
    {
        if (!base.TryReadRaw(out raw, out fault))
            return false;
        if (!TryReadOptional(_offsetPath, 0.0, out var iioOffset, out fault) ||
            !TryReadOptional(_scalePath, 1.0, out var iioScale, out fault))
            return false;
        raw = (raw + iioOffset) * iioScale;
        return true;
    }

    /// <inheritdoc />
    protected override bool TryParseContent(ReadOnlySpan<byte> content, out double raw, out SensorFault? fault)
    {
        fault = null;
        if (TryParseNumber(content, out raw))
            return true;
        fault = new SensorFault(SensorFaultKind.Unparsable, $"{Path}: not a number: \"{Excerpt(content)}\"");
        return false;
    }

    private static bool TryReadOptional(string path, double absent, out double value, out SensorFault? fault)
    {
        value = absent;
        fault = null;
        if (!File.Exists(path))
            return true;
        Span<byte> buffer = stackalloc byte[256];
        if (!TryReadFile(path, buffer, out var length, out fault))
            return false;
        if (TryParseNumber(buffer[..length], out value))
            return true;
        fault = new SensorFault(SensorFaultKind.Unparsable, $"{path}: not a number: \"{Excerpt(buffer[..length])}\"");
        return false;
    }
}

/// <summary>
/// A 1-wire thermometer (DS18B20 and family) through the <c>w1_therm</c> driver's <c>w1_slave</c>
/// file: two lines, the first ending in <c>YES</c> when the scratchpad CRC matched (<c>NO</c>
/// otherwise), the second ending in <c>t=NNNNN</c> in millidegrees Celsius — the raw value.
/// </summary>
internal sealed class W1ThermSensor : FileSensor
{
    /// <summary>Creates the sensor over a <c>w1_slave</c> file; use scale 0.001 for °C.</summary>
    public W1ThermSensor(string path, double scale = 1.0, double offset = 0.0, string unit = "", TimeProvider? timeProvider = null)
        : base(path, scale, offset, unit, timeProvider)
    {
    }

    /// <inheritdoc />
    protected override bool TryParseContent(ReadOnlySpan<byte> content, out double raw, out SensorFault? fault)
    {
        raw = 0;
        fault = null;
        var newline = content.IndexOf((byte)'\n');
        if (newline < 0)
        {
            fault = new SensorFault(SensorFaultKind.Unparsable, $"{Path}: expected two lines, got \"{Excerpt(content)}\"");
            return false;
        }
        var status = content[..newline].TrimEnd(" \t\r"u8);
        var data = content[(newline + 1)..];
        if (status.EndsWith(" NO"u8))
        {
            fault = new SensorFault(SensorFaultKind.CrcError, $"{Path}: CRC check failed");
            return false;
        }
        if (!status.EndsWith(" YES"u8))
        {
            fault = new SensorFault(SensorFaultKind.Unparsable, $"{Path}: first line does not end in YES or NO: \"{Excerpt(status)}\"");
            return false;
        }
        var t = data.IndexOf("t="u8);
        if (t < 0 || !TryParseNumber(data[(t + 2)..], out raw))
        {
            fault = new SensorFault(SensorFaultKind.Unparsable, $"{Path}: second line has no t=NNNNN: \"{Excerpt(data)}\"");
            return false;
        }
        return true;
    }
}
