using System.Globalization;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>Durations as edge.json writes them: a number and a unit, <c>20ms</c>, <c>5s</c>, <c>1.5m</c>, <c>1h</c>.</summary>
public static class DurationText
{
    /// <summary>Parses <paramref name="text"/>; false for anything else (including negative values).</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        var unitStart = s.Length;
        while (unitStart > 0 && char.IsAsciiLetter(s[unitStart - 1])) unitStart--;
        var unit = s[unitStart..];
        if (!double.TryParse(s.AsSpan(0, unitStart), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            return false;
        double? ms = unit switch
        {
            "us" => number / 1000,
            "ms" => number,
            "s" => number * 1000,
            "m" or "min" => number * 60_000,
            "h" => number * 3_600_000,
            _ => null,
        };
        if (ms is not { } value || !double.IsFinite(value) || value > TimeSpan.MaxValue.TotalMilliseconds) return false;
        duration = TimeSpan.FromMilliseconds(value);
        return true;
    }
}
