using System.Net;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>
/// The relay's antiforgery token as its own pages carry it (docs/security.md): a change made with a session
/// cookie (fleet API, logout) must send it in the <c>X-CSRF-Token</c> header or the <c>csrf</c> form field. A test
/// client logged in with a cookie container gets it the way a browser does: by loading a page of the relay,
/// which also sets the matching <c>pinhole_csrf</c> cookie in the container.
/// </summary>
public static partial class RelayAntiforgery
{
    /// <summary>The header the relay reads the token from.</summary>
    public const string Header = "X-CSRF-Token";

    /// <summary>
    /// Loads <paramref name="page"/> (<c>/fleet</c> for admins, <c>/</c> for any viewer) with
    /// <paramref name="client"/>'s session and returns the token in it. The client must keep cookies.
    /// </summary>
    public static async Task<string> TokenAsync(HttpClient client, string page = "/fleet")
    {
        ArgumentNullException.ThrowIfNull(client);
        using var response = await client.GetAsync(new Uri(page, UriKind.Relative));
        var html = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
            throw new InvalidOperationException($"GET {page} answered {(int)response.StatusCode}, not a page with an antiforgery token (logged in?)");
        var match = TokenPattern().Match(html);
        if (!match.Success) throw new InvalidOperationException($"GET {page} has no antiforgery token (meta csrf-token or input csrf)");
        return WebUtility.HtmlDecode(match.Groups["meta"].Success ? match.Groups["meta"].Value : match.Groups["field"].Value);
    }

    /// <summary>Adds <paramref name="token"/> to <paramref name="request"/> and returns it.</summary>
    public static HttpRequestMessage With(this HttpRequestMessage request, string token)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Headers.Add(Header, token);
        return request;
    }

    [GeneratedRegex("""<meta name="csrf-token" content="(?<meta>[^"]*)"|<input type="hidden" name="csrf" value="(?<field>[^"]*)">""")]
    private static partial Regex TokenPattern();
}
