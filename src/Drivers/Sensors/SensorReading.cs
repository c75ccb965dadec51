namespace Pinhole.Drivers.Sensors;

/// <summary>One measurement.</summary>
/// <param name="Value">The value in <paramref name="Unit"/>, finite.</param>
/// <param name="Unit">The unit, for example <c>°C</c>, <c>%</c>, <c>kPa</c>; empty when unitless.</param>
/// <param name="Timestamp">When it was measured (UTC).</param>
public readonly record struct SensorReading(double Value, string Unit, DateTimeOffset Timestamp);

/// <summary>Why a sensor could not be read.</summary>
public enum SensorFaultKind
{
    /// <summary>The file does not exist (sensor unplugged, driver not loaded, wrong path).</summary>
    Missing,

    /// <summary>The file exists but reading it failed (permission, I/O error from the driver).</summary>
    Unreadable,

    /// <summary>The content is not a number in the expected format.</summary>
    Unparsable,

    /// <summary>The sensor reported a checksum failure (1-wire <c>crc=.. NO</c>).</summary>
    CrcError,
}

/// <summary>A failed read, with a human-readable reason.</summary>
/// <param name="Kind">The class of failure; fault reporting compares kinds to detect a state change.</param>
/// <param name="Detail">One line saying what was wrong.</param>
public sealed record SensorFault(SensorFaultKind Kind, string Detail)
{
    /// <inheritdoc />
    public override string ToString() => $"{Kind}: {Detail}";
}
