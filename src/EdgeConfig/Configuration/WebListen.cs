using System.Net;

namespace Pinhole.EdgeHost.Configuration;

/// <summary>Where the local page listens: <c>http://ADDRESS:PORT</c> with an IP address, <c>localhost</c> or <c>*</c>/<c>0.0.0.0</c>.</summary>
public sealed record WebListen(IPAddress? Address, bool Localhost, int Port)
{
    /// <summary>Parses <c>web.listen</c>; port 0 picks a free port (tests).</summary>
    public static bool TryParse(string text, out WebListen listen, out string error)
    {
        listen = new WebListen(IPAddress.Any, false, 8081);
        error = "";
        // Uri cannot parse "*" or "+" as a host; map them to the any-address first.
        var normalized = text.Replace("://*:", "://0.0.0.0:", StringComparison.Ordinal)
                             .Replace("://+:", "://0.0.0.0:", StringComparison.Ordinal);
        if (!Uri.TryCreate(normalized, UriKind.Absolute, out var uri) || uri.IsFile)
        {
            error = $"\"{text}\" is not a URL (use e.g. http://0.0.0.0:8081)";
            return false;
        }
        if (uri.Scheme != "http")
        {
            error = $"unsupported scheme \"{uri.Scheme}\" (the local page serves plain http://, e.g. http://0.0.0.0:8081)";
            return false;
        }
        if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0)
        {
            error = $"\"{text}\" must be just scheme, address and port (e.g. http://0.0.0.0:8081)";
            return false;
        }
        if (uri.IsDefaultPort && !normalized.Contains(":80", StringComparison.Ordinal))
        {
            error = $"\"{text}\" needs an explicit port (e.g. http://0.0.0.0:8081)";
            return false;
        }
        if (uri.Host == "localhost")
        {
            listen = new WebListen(null, true, uri.Port);
            return true;
        }
        if (!IPAddress.TryParse(uri.Host, out var address))
        {
            error = $"host \"{uri.Host}\" must be an IP address, localhost or * (e.g. http://0.0.0.0:8081)";
            return false;
        }
        listen = new WebListen(address, false, uri.Port);
        return true;
    }
}
