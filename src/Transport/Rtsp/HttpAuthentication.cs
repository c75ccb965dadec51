using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Pinhole.Transport.Rtsp;

/// <summary>Digest hash algorithms: RFC 2617 MD5 and RFC 7616 SHA-256.</summary>
public enum DigestAlgorithm
{
    /// <summary>MD5 (RFC 2617; what most cameras speak).</summary>
    Md5,

    /// <summary>SHA-256 (RFC 7616 §3.2).</summary>
    Sha256,
}

/// <summary>The Digest computations of RFC 7616 §3.4.1 (and RFC 2617 §3.2.2 without qop).</summary>
public static class DigestMath
{
    /// <summary>The token used in the <c>algorithm=</c> parameter.</summary>
    public static string Name(DigestAlgorithm algorithm) => algorithm == DigestAlgorithm.Sha256 ? "SHA-256" : "MD5";

    /// <summary>Maps an <c>algorithm=</c> value to the enum; null (absent) means MD5. False for unsupported ones.</summary>
    internal static bool TryParseAlgorithm(string? value, out DigestAlgorithm algorithm)
    {
        algorithm = DigestAlgorithm.Md5;
        if (value is null || value.Equals("MD5", StringComparison.OrdinalIgnoreCase)) return true;
        if (value.Equals("SHA-256", StringComparison.OrdinalIgnoreCase)) { algorithm = DigestAlgorithm.Sha256; return true; }
        return false;
    }

    /// <summary>Lower-case hex of H(<paramref name="text"/>).</summary>
    public static string Hash(DigestAlgorithm algorithm, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return Convert.ToHexStringLower(algorithm == DigestAlgorithm.Sha256 ? SHA256.HashData(bytes) : MD5.HashData(bytes));
    }

    /// <summary>H(A1) = H(username ":" realm ":" password) (RFC 7616 §3.4.2).</summary>
    public static string Ha1(DigestAlgorithm algorithm, string user, string realm, string password) =>
        Hash(algorithm, $"{user}:{realm}:{password}");

    /// <summary>The <c>response=</c> value: with qop=auth KD(H(A1), nonce:nc:cnonce:qop:H(A2)),
    /// without qop KD(H(A1), nonce:H(A2)) (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1).</summary>
    public static string Response(DigestAlgorithm algorithm, string ha1, string nonce, string method, string uri, string? qop, string? nc, string? cnonce)
    {
        var ha2 = Hash(algorithm, $"{method}:{uri}");
        return qop is null
            ? Hash(algorithm, $"{ha1}:{nonce}:{ha2}")
            : Hash(algorithm, $"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}");
    }
}

/// <summary>
/// Client side of RTSP authentication: answers a 401 challenge with an Authorization header for
/// every following request. Prefers Digest SHA-256, then Digest MD5, then Basic (RFC 7616 §3.7:
/// use the strongest algorithm offered). Never exposes the password.
/// </summary>
internal sealed class HttpClientAuthenticator
{
    private readonly string _user;
    private readonly string _password;
    private readonly HttpAuthChallenge _challenge;
    private readonly DigestAlgorithm _algorithm;
    private readonly string? _qop;
    private string? _ha1;
    private int _nonceCount;

    private HttpClientAuthenticator(string user, string password, HttpAuthChallenge challenge, DigestAlgorithm algorithm, string? qop)
    {
        _user = user;
        _password = password;
        _challenge = challenge;
        _algorithm = algorithm;
        _qop = qop;
    }

    /// <summary>The scheme in use, <c>Basic</c> or <c>Digest</c>.</summary>
    public string Scheme => _challenge.Scheme;

    /// <summary>The Digest algorithm in use (meaningless for Basic).</summary>
    public DigestAlgorithm Algorithm => _algorithm;

    /// <summary>Picks the strongest supported challenge; null when none is supported.</summary>
    public static HttpClientAuthenticator? Create(IReadOnlyList<HttpAuthChallenge> challenges, string user, string password)
    {
        ArgumentNullException.ThrowIfNull(challenges);
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(password);
        HttpClientAuthenticator? best = null;
        var bestRank = -1;
        foreach (var c in challenges)
        {
            if (c.Is("Digest"))
            {
                if (c["realm"] is null || c["nonce"] is null) continue;
                if (!DigestMath.TryParseAlgorithm(c["algorithm"], out var alg)) continue;
                string? qop = null;
                if (c["qop"] is { } qops)
                {
                    // RFC 7616 §3.3: qop is a list; Pinhole speaks only "auth".
                    if (!qops.Split(',', StringSplitOptions.TrimEntries).Contains("auth", StringComparer.OrdinalIgnoreCase)) continue;
                    qop = "auth";
                }
                var rank = alg == DigestAlgorithm.Sha256 ? 3 : 2;
                if (rank > bestRank) { best = new HttpClientAuthenticator(user, password, c, alg, qop); bestRank = rank; }
            }
            else if (c.Is("Basic") && bestRank < 1)
            {
                best = new HttpClientAuthenticator(user, password, c, DigestAlgorithm.Md5, null);
                bestRank = 1;
            }
        }
        return best;
    }

    /// <summary>The Authorization header value for a request (each call counts one nonce use).</summary>
    public string Authorize(string method, string uri)
    {
        if (_challenge.Is("Basic"))
            return "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_user}:{_password}"));
        var realm = _challenge["realm"]!;
        var nonce = _challenge["nonce"]!;
        _ha1 ??= DigestMath.Ha1(_algorithm, _user, realm, _password);
        var p = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["username"] = _user,
            ["realm"] = realm,
            ["nonce"] = nonce,
            ["uri"] = uri,
        };
        string? nc = null, cnonce = null;
        if (_qop is not null)
        {
            nc = (++_nonceCount).ToString("x8", CultureInfo.InvariantCulture);
            cnonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        }
        p["response"] = DigestMath.Response(_algorithm, _ha1, nonce, method, uri, _qop, nc, cnonce);
        if (_challenge["algorithm"] is not null) p["algorithm"] = DigestMath.Name(_algorithm);
        if (_challenge["opaque"] is { } opaque) p["opaque"] = opaque;
        if (_qop is not null)
        {
            p["qop"] = _qop;
            p["nc"] = nc!;
            p["cnonce"] = cnonce!;
        }
        return new HttpAuthChallenge("Digest", p).ToString();
    }
}

/// <summary>What <see cref="DigestServer.Verify"/> decided.</summary>
public enum DigestVerdict
{
    /// <summary>The credentials are right.</summary>
    Valid,

    /// <summary>Wrong user, password or response, or a malformed header.</summary>
    Invalid,

    /// <summary>The response is right for an expired nonce: challenge again with <c>stale=true</c> (RFC 7616 §3.3).</summary>
    Stale,
}

/// <summary>
/// Server side of RTSP Digest authentication (RFC 7616, RFC 2617): issues challenges with
/// self-verifying nonces (time + HMAC, so no per-client state) and checks Authorization headers
/// against H(A1) supplied by a lookup, so the server never needs the plaintext password.
/// </summary>
public sealed class DigestServer
{
    private readonly byte[] _key;
    private readonly TimeProvider _time;

    /// <summary>Creates a verifier for <paramref name="realm"/>; nonces are valid for <paramref name="nonceLifetime"/>.</summary>
    public DigestServer(string realm, TimeSpan nonceLifetime, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(realm);
        Realm = realm;
        NonceLifetime = nonceLifetime;
        _time = timeProvider ?? TimeProvider.System;
        _key = RandomNumberGenerator.GetBytes(32);
    }

    /// <summary>The protection space shown to users.</summary>
    public string Realm { get; }

    /// <summary>How long a nonce is accepted.</summary>
    public TimeSpan NonceLifetime { get; }

    /// <summary>A WWW-Authenticate value: <c>Digest realm=…, nonce=…, algorithm=…, qop="auth"</c>.</summary>
    /// <param name="algorithm">The hash the client is asked to use.</param>
    /// <param name="stale">Tell the client its credentials were right but its nonce had expired.</param>
    /// <param name="scope">Binds the nonce to one client connection (any string unique to it): <see cref="Verify"/>
    /// with another scope treats the nonce as not issued here, so a header captured on one connection cannot be
    /// replayed on another. Null: the nonce is valid on any connection.</param>
    public string CreateChallenge(DigestAlgorithm algorithm, bool stale = false, string? scope = null)
    {
        // RFC 7616 §3.3: in a challenge qop is a quoted list (unlike in the credentials), algorithm and stale are tokens.
        var challenge = $"Digest realm=\"{Realm}\", nonce=\"{CreateNonce(scope)}\", algorithm={DigestMath.Name(algorithm)}, qop=\"auth\"";
        return stale ? challenge + ", stale=true" : challenge;
    }

    /// <summary>A Basic challenge for this realm (RFC 7617).</summary>
    public string CreateBasicChallenge() => $"Basic realm=\"{Realm}\"";

    /// <summary>
    /// Checks a Digest Authorization header for <paramref name="method"/>. <paramref name="ha1Lookup"/>
    /// gets (user, realm, algorithm name) and returns H(A1) in lower-case hex, or null for an unknown user.
    /// </summary>
    /// <remarks>With a <paramref name="scope"/>, a nonce issued for another scope (or never issued) is
    /// <see cref="DigestVerdict.Stale"/> when the response is otherwise right (the client simply gets a fresh
    /// nonce), and <see cref="DigestVerdict.Invalid"/> otherwise.</remarks>
    public DigestVerdict Verify(string authorizationHeader, string method, Func<string, string, string, string?> ha1Lookup, out string? user,
        string? scope = null)
    {
        ArgumentNullException.ThrowIfNull(ha1Lookup);
        user = null;
        HttpAuthChallenge a;
        try { a = HttpAuthChallenge.ParseOne(authorizationHeader ?? ""); }
        catch (RtspProtocolException) { return DigestVerdict.Invalid; }
        if (!a.Is("Digest")) return DigestVerdict.Invalid;
        var (username, realm, nonce, uri, response) = (a["username"], a["realm"], a["nonce"], a["uri"], a["response"]);
        if (username is null || realm != Realm || nonce is null || uri is null || response is null) return DigestVerdict.Invalid;
        if (!DigestMath.TryParseAlgorithm(a["algorithm"], out var alg)) return DigestVerdict.Invalid;
        var qop = a["qop"];
        if (qop is not null && qop != "auth") return DigestVerdict.Invalid;
        if (qop is not null && (a["nc"] is null || a["cnonce"] is null)) return DigestVerdict.Invalid;
        var nonceState = CheckNonce(nonce, scope);
        if (nonceState == NonceState.Forged && scope is null) return DigestVerdict.Invalid;
        var ha1 = ha1Lookup(username, realm, DigestMath.Name(alg));
        if (ha1 is null)
        {
            // Same work for unknown users, so they cannot be told apart by timing.
            DigestMath.Response(alg, new string('0', alg == DigestAlgorithm.Sha256 ? 64 : 32), nonce, method, uri, qop, a["nc"], a["cnonce"]);
            return DigestVerdict.Invalid;
        }
        var expected = DigestMath.Response(alg, ha1, nonce, method, uri, qop, a["nc"], a["cnonce"]);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(response.ToLowerInvariant())))
            return DigestVerdict.Invalid;
        user = username;
        return nonceState == NonceState.Fresh ? DigestVerdict.Valid : DigestVerdict.Stale;
    }

    /// <summary>Decodes a Basic Authorization header (RFC 7617) into user and password; false when malformed.</summary>
    public static bool TryParseBasic(string? authorizationHeader, out string user, out string password)
    {
        user = password = "";
        if (authorizationHeader is null || !authorizationHeader.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(authorizationHeader[6..].Trim()));
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0) return false;
            user = text[..colon];
            password = text[(colon + 1)..];
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private enum NonceState { Fresh, Expired, Forged }

    private string CreateNonce(string? scope)
    {
        // nonce = hex(time-ms) "." hex(HMAC-SHA256(key, time-ms [NUL scope])[..16])
        var ms = _time.GetUtcNow().ToUnixTimeMilliseconds().ToString("x", CultureInfo.InvariantCulture);
        return ms + "." + Mac(scope is null ? ms : ms + "\0" + scope);
    }

    private NonceState CheckNonce(string nonce, string? scope)
    {
        var dot = nonce.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0) return NonceState.Forged;
        var ms = nonce[..dot];
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Mac(scope is null ? ms : ms + "\0" + scope)), Encoding.ASCII.GetBytes(nonce[(dot + 1)..])))
            return NonceState.Forged;
        if (!long.TryParse(ms, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var issued)) return NonceState.Forged;
        var age = _time.GetUtcNow().ToUnixTimeMilliseconds() - issued;
        return age < 0 || age > NonceLifetime.TotalMilliseconds ? NonceState.Expired : NonceState.Fresh;
    }

    private string Mac(string text) => Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.ASCII.GetBytes(text)))[..32];
}
