using System.Globalization;

namespace Pinhole.EdgeHost.Configuration;

/// <summary>
/// Durations as written in edge.json: a number and a unit, optionally repeated
/// (<c>20ms</c>, <c>5s</c>, <c>1.5s</c>, <c>1m</c>, <c>1m30s</c>, <c>2h</c>). A bare <c>0</c> is zero.
/// </summary>
public static class Duration
{
    /// <summary>Parses <paramref name="text"/>; false (with a reason) when it is not a duration.</summary>
    public static bool TryParse(string? text, out TimeSpan value, out string error)
    {
        value = TimeSpan.Zero;
        error = "";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty duration (use e.g. 5s, 20ms, 1m)";
            return false;
        }
        if (text == "0") return true;

        var s = text.AsSpan();
        var total = 0.0;
        while (!s.IsEmpty)
        {
            var n = 0;
            while (n < s.Length && (char.IsAsciiDigit(s[n]) || s[n] == '.')) n++;
            var u = n;
            while (u < s.Length && char.IsAsciiLetterLower(s[u])) u++;
            if (n == 0 || u == n ||
                !double.TryParse(s[..n], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                error = $"\"{text}\" is not a duration (use e.g. 5s, 20ms, 1m)";
                return false;
            }
            double ms;
            switch (s[n..u])
            {
                case "ms": ms = number; break;
                case "s": ms = number * 1000; break;
                case "m": ms = number * 60_000; break;
                case "h": ms = number * 3_600_000; break;
                default:
                    error = $"\"{text}\" has unknown unit \"{s[n..u].ToString()}\" (use ms, s, m or h)";
                    return false;
            }
            total += ms;
            s = s[u..];
        }
        if (total > TimeSpan.FromDays(365).TotalMilliseconds)
        {
            error = $"\"{text}\" is too long";
            return false;
        }
        value = TimeSpan.FromMilliseconds(total);
        return true;
    }

    /// <summary>Parses a duration that the loader already validated; <paramref name="fallback"/> when absent.</summary>
    public static TimeSpan ParseOrDefault(string? text, TimeSpan fallback) =>
        text is null ? fallback
        : TryParse(text, out var value, out var error) ? value
        : throw new FormatException(error);
}
