using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Pinhole.Transport.Uplink;

/// <summary>How <see cref="UplinkClientConnection.ConnectAsync"/> reaches a relay.</summary>
public sealed record UplinkConnectOptions
{
    /// <summary>Extra request headers on the upgrade (device id, <c>Authorization</c>, versions).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    /// <summary>The subprotocol offered; the relay must select it. Default <see cref="UplinkProtocol.SubProtocol"/>.</summary>
    public string SubProtocol { get; init; } = UplinkProtocol.SubProtocol;

    /// <summary>When set, the relay's certificate must chain to one of these instead of the system roots.</summary>
    public X509Certificate2Collection? TrustedCa { get; init; }

    /// <summary>
    /// An HTTP proxy to tunnel through with CONNECT (<c>http://[user:password@]host:port</c>). Null
    /// asks <see cref="SystemProxy"/>, which by default reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY.
    /// </summary>
    public Uri? Proxy { get; init; }

    /// <summary>The proxy source used when <see cref="Proxy"/> is null; null means a direct connection.</summary>
    public IWebProxy? SystemProxy { get; init; } = System.Net.Http.HttpClient.DefaultProxy;

    /// <summary>Most time for DNS, TCP, proxy, TLS and the upgrade together. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Most time between sending the WebSocket upgrade request and the relay's answer, within
    /// <see cref="ConnectTimeout"/>; null (the default) leaves only the connect timeout. A middlebox that swallows
    /// upgrades (holds the request until its own timeout) then fails the attempt early with an
    /// <see cref="UplinkUpgradeTimeoutException"/>, and the caller can fall back to HTTP in the time left.
    /// </summary>
    public TimeSpan? UpgradeTimeout { get; init; }

    /// <summary>Size limits for what the relay sends.</summary>
    public UplinkLimits Limits { get; init; } = UplinkLimits.Default;
}

/// <summary>The relay answered the upgrade with something other than 101.</summary>
public sealed class UplinkHandshakeException : IOException
{
    /// <summary>Creates the exception for an HTTP answer.</summary>
    public UplinkHandshakeException(int statusCode, string reasonPhrase, IReadOnlyDictionary<string, string> headers)
        : base($"HTTP {statusCode} {reasonPhrase}".TrimEnd())
    {
        StatusCode = statusCode;
        Headers = headers;
    }

    /// <summary>Creates the exception.</summary>
    public UplinkHandshakeException() { Headers = new Dictionary<string, string>(); }

    /// <summary>Creates the exception with a reason.</summary>
    public UplinkHandshakeException(string message) : base(message) { Headers = new Dictionary<string, string>(); }

    /// <summary>Creates the exception with a reason and cause.</summary>
    public UplinkHandshakeException(string message, Exception inner) : base(message, inner) { Headers = new Dictionary<string, string>(); }

    /// <summary>The HTTP status the relay answered (0 when it was not HTTP).</summary>
    public int StatusCode { get; }

    /// <summary>The response headers (names case-insensitive; repeated headers joined with a comma).</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }
}

/// <summary>
/// The connection (TCP, proxy, TLS) was made and the upgrade request sent, but no answer came within
/// <see cref="UplinkConnectOptions.UpgradeTimeout"/>: something on the way holds WebSocket upgrades.
/// </summary>
public sealed class UplinkUpgradeTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    public UplinkUpgradeTimeoutException() { }

    /// <summary>Creates the exception with a reason.</summary>
    public UplinkUpgradeTimeoutException(string message) : base(message) { }

    /// <summary>Creates the exception with a reason and cause.</summary>
    public UplinkUpgradeTimeoutException(string message, Exception inner) : base(message, inner) { }
}
