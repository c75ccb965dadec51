namespace Pinhole.EdgeHost.Configuration;

/// <summary>
/// The password in a camera URL (<c>rtsp://user:password@host/…</c>): what the page shows instead of it, and
/// how to recognise that placeholder when the page sends the URL back.
/// </summary>
public static class CameraUrlPassword
{
    /// <summary>The URL with its password replaced by <see cref="EdgeConfigStore.PasswordPlaceholder"/>; null when it has none.</summary>
    public static string? Redact(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!TryFind(source, out var start, out var length) || length == 0) return null;
        return string.Concat(source.AsSpan(0, start), EdgeConfigStore.PasswordPlaceholder, source.AsSpan(start + length));
    }

    /// <summary>True when the URL's password is the placeholder.</summary>
    public static bool HasPlaceholder(string source) =>
        TryFind(source, out var start, out var length) && source.AsSpan(start, length).SequenceEqual(EdgeConfigStore.PasswordPlaceholder);

    // scheme "://" user ":" password "@" host…: the userinfo ends at the last '@' before the path.
    private static bool TryFind(string source, out int start, out int length)
    {
        start = length = 0;
        var scheme = source.IndexOf("://", StringComparison.Ordinal);
        if (scheme <= 0 || source.StartsWith("exec:", StringComparison.Ordinal)) return false;
        var authorityStart = scheme + 3;
        var pathStart = source.IndexOfAny(['/', '?', '#'], authorityStart);
        var authorityEnd = pathStart < 0 ? source.Length : pathStart;
        var at = source.LastIndexOf('@', authorityEnd - 1, authorityEnd - authorityStart);
        if (at < 0) return false;
        var colon = source.IndexOf(':', authorityStart, at - authorityStart);
        if (colon < 0) return false;
        start = colon + 1;
        length = at - start;
        return true;
    }
}
