using System.Text;

namespace Pinhole.Transport.Rtsp;

/// <summary>
/// An authentication scheme with its parameters, as sent in WWW-Authenticate (a challenge) or
/// Authorization (credentials) — RFC 7235 §2.1 syntax, used by RTSP (RFC 2326 §12.44).
/// Parameter names compare case-insensitively; quoted values are unquoted.
/// </summary>
public sealed class HttpAuthChallenge
{
    /// <summary>Creates a challenge or credentials value.</summary>
    public HttpAuthChallenge(string scheme, IReadOnlyDictionary<string, string>? parameters = null, string? token68 = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(scheme);
        Scheme = scheme;
        Parameters = parameters ?? new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        Token68 = token68;
    }

    /// <summary>The scheme, e.g. <c>Basic</c> or <c>Digest</c>.</summary>
    public string Scheme { get; }

    /// <summary>auth-param pairs (realm, nonce, algorithm, qop, …).</summary>
    public IReadOnlyDictionary<string, string> Parameters { get; }

    /// <summary>The token68 form (Basic credentials), when used instead of parameters.</summary>
    public string? Token68 { get; }

    /// <summary>A parameter's value or null.</summary>
    public string? this[string name] => Parameters.TryGetValue(name, out var v) ? v : null;

    /// <summary>True when <see cref="Scheme"/> is <paramref name="scheme"/> (case-insensitive).</summary>
    public bool Is(string scheme) => string.Equals(Scheme, scheme, StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses every challenge in the given WWW-Authenticate header values
    /// (one header may hold several, separated by commas).</summary>
    internal static IReadOnlyList<HttpAuthChallenge> ParseAll(IEnumerable<string> headerValues)
    {
        ArgumentNullException.ThrowIfNull(headerValues);
        var result = new List<HttpAuthChallenge>();
        foreach (var v in headerValues) Parse(v, result);
        return result;
    }

    /// <summary>Parses one Authorization header value (exactly one scheme).</summary>
    public static HttpAuthChallenge ParseOne(string headerValue)
    {
        var list = new List<HttpAuthChallenge>();
        Parse(headerValue, list);
        if (list.Count != 1) throw new RtspProtocolException("authorization header must hold exactly one scheme");
        return list[0];
    }

    private static void Parse(string s, List<HttpAuthChallenge> output)
    {
        if (s.Length > 4096) throw new RtspProtocolException("authentication header longer than 4096 characters");
        var i = 0;
        string? scheme = null;
        Dictionary<string, string>? ps = null;
        string? token68 = null;
        void Flush()
        {
            if (scheme is not null) output.Add(new HttpAuthChallenge(scheme, ps, token68));
            scheme = null; ps = null; token68 = null;
        }
        while (true)
        {
            SkipSeparators(s, ref i);
            if (i >= s.Length) break;
            var token = ReadToken(s, ref i);
            if (token.Length == 0) throw new RtspProtocolException("malformed authentication header");
            SkipSpaces(s, ref i);
            if (i < s.Length && s[i] == '=' && scheme is not null && token68 is null
                && !(i + 1 >= s.Length || s[i + 1] == '=' || s[i + 1] == ','))
            {
                i++;
                SkipSpaces(s, ref i);
                var value = i < s.Length && s[i] == '"' ? ReadQuoted(s, ref i) : ReadToken(s, ref i);
                ps ??= new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                ps[token] = value;
                continue;
            }
            // A bare token: either a new scheme, or the token68 after the scheme (Basic dXNlcjpw).
            if (scheme is not null && ps is null && token68 is null && !IsAfterComma(s, i, token))
            {
                var start = i - token.Length;
                var end = i;
                while (end < s.Length && s[end] == '=') end++;
                token68 = s[start..end];
                i = end;
                continue;
            }
            Flush();
            scheme = token;
        }
        Flush();
    }

    // Decides whether the token just read was separated from the scheme by a comma (new challenge).
    private static bool IsAfterComma(string s, int i, string token)
    {
        var j = i - token.Length - 1;
        while (j >= 0 && s[j] == ' ') j--;
        return j >= 0 && s[j] == ',';
    }

    private static void SkipSpaces(string s, ref int i)
    {
        while (i < s.Length && (s[i] == ' ' || s[i] == '\t')) i++;
    }

    private static void SkipSeparators(string s, ref int i)
    {
        while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
    }

    private static string ReadToken(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && s[i] is not (' ' or '\t' or ',' or '=' or '"')) i++;
        // token68 may end with '=' padding: handled by the caller.
        return s[start..i];
    }

    private static string ReadQuoted(string s, ref int i)
    {
        var sb = new StringBuilder();
        i++; // opening quote
        while (i < s.Length)
        {
            var c = s[i++];
            if (c == '"') return sb.ToString();
            if (c == '\\' && i < s.Length) c = s[i++];
            sb.Append(c);
        }
        throw new RtspProtocolException("unterminated quoted string in authentication header");
    }

    /// <summary>Formats as a header value: <c>Scheme k="v", …</c> (or <c>Scheme token68</c>).</summary>
    public override string ToString()
    {
        if (Token68 is not null) return Scheme + " " + Token68;
        var sb = new StringBuilder(Scheme);
        var first = true;
        foreach (var (k, v) in Parameters)
        {
            sb.Append(first ? " " : ", ");
            first = false;
            // RFC 7616 §3.4: algorithm, qop (in credentials) and nc are unquoted.
            if (k is "algorithm" or "qop" or "nc" or "stale")
                sb.Append(k).Append('=').Append(v);
            else
                sb.Append(k).Append("=\"").Append(v.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)).Append('"');
        }
        return sb.ToString();
    }
}
