namespace Pinhole.Transport.Rtsp;

/// <summary>
/// URL helpers that keep credentials out of logs and off the wire. Every log line and exception
/// message that mentions a camera URL goes through <see cref="Redact(string)"/>.
/// </summary>
public static partial class RtspUrl
{
    /// <summary>The URL with any <c>user:password@</c> replaced by <c>***@</c>. Works on strings that
    /// are not valid URIs too (it never echoes the original when it cannot parse it safely).</summary>
    public static string Redact(string? url)
    {
        if (string.IsNullOrEmpty(url)) return "";
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        var start = scheme < 0 ? 0 : scheme + 3;
        var end = url.IndexOfAny(['/', '?', '#'], start);
        if (end < 0) end = url.Length;
        // The last '@' in the authority ends the userinfo (a password may contain '@' unencoded).
        var at = url.LastIndexOf('@', end - 1, end - start);
        return at < 0 ? url : string.Concat(url.AsSpan(0, start), "***", url.AsSpan(at));
    }

    /// <summary>Redacts <c>user:password@</c> in every URL inside free text (a command line, a log line from a child process).</summary>
    public static string RedactText(string? text) =>
        string.IsNullOrEmpty(text) ? "" : UserInfoInText().Replace(text, "$1***@");

    [System.Text.RegularExpressions.GeneratedRegex(@"([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@")]
    private static partial System.Text.RegularExpressions.Regex UserInfoInText();

    /// <summary>The URL with credentials redacted.</summary>
    public static string Redact(Uri? url) => url is null ? "" : Redact(url.OriginalString);

    /// <summary>The URL without its userinfo, as sent on the RTSP request line.</summary>
    internal static Uri WithoutCredentials(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (string.IsNullOrEmpty(url.UserInfo)) return url;
        var b = new UriBuilder(url) { UserName = "", Password = "" };
        return b.Uri;
    }

    /// <summary>The URL-decoded user and password from the userinfo, or false when there are none.</summary>
    internal static bool TryGetCredentials(Uri url, out string user, out string password)
    {
        ArgumentNullException.ThrowIfNull(url);
        user = password = "";
        if (string.IsNullOrEmpty(url.UserInfo)) return false;
        var colon = url.UserInfo.IndexOf(':', StringComparison.Ordinal);
        user = Uri.UnescapeDataString(colon < 0 ? url.UserInfo : url.UserInfo[..colon]);
        password = colon < 0 ? "" : Uri.UnescapeDataString(url.UserInfo[(colon + 1)..]);
        return true;
    }

    /// <summary>Resolves a control attribute (RFC 2326 §C.1.1): <c>*</c> means the base itself, an
    /// absolute URL stands alone, anything else is relative to <paramref name="baseUrl"/>
    /// (Content-Base, Content-Location or the request URL).</summary>
    internal static Uri ResolveControl(Uri baseUrl, string? control)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (string.IsNullOrEmpty(control) || control == "*") return baseUrl;
        if (Uri.TryCreate(control, UriKind.Absolute, out var absolute) && absolute.Scheme.StartsWith("rtsp", StringComparison.OrdinalIgnoreCase))
            return absolute;
        // Relative controls resolve against the base as a directory: many servers send a Content-Base
        // without a trailing slash but mean "append" (live555, GStreamer behave this way).
        var b = baseUrl.OriginalString;
        if (!b.EndsWith('/')) b += "/";
        if (!Uri.TryCreate(new Uri(b), control, out var resolved))
            throw new RtspProtocolException($"SDP control '{RtspTransport.Truncate(control)}' is not a URL");
        return resolved;
    }
}
