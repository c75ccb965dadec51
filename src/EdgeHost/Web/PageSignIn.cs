using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Pinhole.EdgeHost.Web;

/// <summary>
/// Sign-in to the LAN page with ASP.NET Core: the cookie handler (cookie <c>pinhole_session</c>, HttpOnly,
/// SameSite=Strict, 8 h sliding) over a server-side <see cref="PageTicketStore"/> so a logout ends the session
/// everywhere (the live status feed too), the <see cref="PolicyName"/> authorization policy on the API, and
/// antiforgery tokens (header <c>X-CSRF-Token</c> or form field <c>csrf</c>) on every change.
/// </summary>
internal static class PageSignIn
{
    /// <summary>The authorization policy of everything behind the login: an authenticated page session.</summary>
    public const string PolicyName = "page";

    /// <summary>The session cookie's name (docs/security.md).</summary>
    public const string CookieName = "pinhole_session";

    /// <summary>The antiforgery cookie's name.</summary>
    public const string AntiforgeryCookieName = "pinhole_csrf";

    /// <summary>Header the page's script sends the antiforgery token in.</summary>
    public const string TokenHeader = "X-CSRF-Token";

    /// <summary>Form field the logout form sends the antiforgery token in.</summary>
    public const string TokenField = "csrf";

    /// <summary>How long an idle session lasts.</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromHours(8);

    public static IServiceCollection AddPageSignIn(this IServiceCollection services)
    {
        // Keys in memory: a restart logs everyone out, which suits a device page (and needs no writable key directory).
        services.AddDataProtection().UseEphemeralDataProtectionProvider().SetApplicationName("pinhole-edge");
        services.AddSingleton<PageTicketStore>();
        services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie();
        services.AddOptions<CookieAuthenticationOptions>(CookieAuthenticationDefaults.AuthenticationScheme)
            .Configure<PageTicketStore, TimeProvider>((o, store, time) =>
            {
                o.Cookie.Name = CookieName;
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Strict;
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest; // the page is often plain http on the LAN
                o.Cookie.Path = "/";
                o.Cookie.IsEssential = true;
                o.ExpireTimeSpan = IdleTimeout;
                o.SlidingExpiration = true;
                o.SessionStore = store;
                o.TimeProvider = time;
                // The API answers 401/403 itself; nothing redirects to a login page.
                o.Events.OnRedirectToLogin = c => Refuse(c.HttpContext, StatusCodes.Status401Unauthorized, "login required");
                o.Events.OnRedirectToAccessDenied = c => Refuse(c.HttpContext, StatusCodes.Status403Forbidden, "not allowed");
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(PolicyName, p => p.AddAuthenticationSchemes(CookieAuthenticationDefaults.AuthenticationScheme).RequireAuthenticatedUser());
        services.AddAntiforgery(o =>
        {
            o.HeaderName = TokenHeader;
            o.FormFieldName = TokenField;
            o.Cookie.Name = AntiforgeryCookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.Path = "/";
            o.SuppressXFrameOptionsHeader = true; // the page sends DENY itself
        });
        return services;
    }

    /// <summary>Signs the page's owner in (after the password was checked).</summary>
    public static Task SignInAsync(HttpContext context) =>
        context.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme,
            new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, "owner")], CookieAuthenticationDefaults.AuthenticationScheme)));

    /// <summary>True when the request carries a valid antiforgery token for its session.</summary>
    public static Task<bool> HasValidTokenAsync(HttpContext context) =>
        context.RequestServices.GetRequiredService<IAntiforgery>().IsRequestValidAsync(context);

    /// <summary>The request token to put in the page (and the matching cookie, set on the response).</summary>
    public static string IssueToken(HttpContext context) =>
        context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context).RequestToken ?? "";

    private static Task Refuse(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(new JsonObject
        {
            ["saved"] = false,
            ["problems"] = new JsonArray(new JsonObject { ["path"] = "", ["message"] = message }),
        }.ToJsonString());
    }
}

/// <summary>
/// The page's sessions, held on the device (the cookie only names one): a logout or a restart ends them, and
/// the live status feed asks <see cref="IsLive"/> to notice. At most 64; a new login pushes out the session
/// closest to expiry.
/// </summary>
internal sealed class PageTicketStore(TimeProvider time) : ITicketStore
{
    /// <summary>Claim holding a session's key, so a request can ask whether its session still exists.</summary>
    public const string SessionKeyClaim = "pinhole:session";

    private const int MaxSessions = 64;
    private readonly Dictionary<string, AuthenticationTicket> _tickets = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public Task<string> StoreAsync(AuthenticationTicket ticket)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        if (ticket.Principal.Identity is ClaimsIdentity identity)
        {
            foreach (var old in identity.FindAll(SessionKeyClaim).ToList()) identity.RemoveClaim(old);
            identity.AddClaim(new Claim(SessionKeyClaim, key));
        }
        lock (_lock)
        {
            var now = time.GetUtcNow();
            foreach (var (k, t) in _tickets.Where(kv => Expired(kv.Value, now)).ToList()) _tickets.Remove(k);
            if (_tickets.Count >= MaxSessions)
                _tickets.Remove(_tickets.MinBy(kv => kv.Value.Properties.ExpiresUtc ?? DateTimeOffset.MinValue).Key);
            _tickets[key] = ticket;
        }
        return Task.FromResult(key);
    }

    public Task RenewAsync(string key, AuthenticationTicket ticket)
    {
        lock (_lock)
            if (_tickets.ContainsKey(key)) _tickets[key] = ticket;
        return Task.CompletedTask;
    }

    public Task<AuthenticationTicket?> RetrieveAsync(string key)
    {
        lock (_lock)
        {
            if (!_tickets.TryGetValue(key, out var ticket)) return Task.FromResult<AuthenticationTicket?>(null);
            if (!Expired(ticket, time.GetUtcNow())) return Task.FromResult<AuthenticationTicket?>(ticket);
            _tickets.Remove(key);
            return Task.FromResult<AuthenticationTicket?>(null);
        }
    }

    public Task RemoveAsync(string key)
    {
        lock (_lock) _tickets.Remove(key);
        return Task.CompletedTask;
    }

    /// <summary>True while the session <paramref name="user"/> was authenticated with is stored and unexpired.</summary>
    public bool IsLive(ClaimsPrincipal user)
    {
        if (user.FindFirst(SessionKeyClaim)?.Value is not { } key) return false;
        lock (_lock) return _tickets.TryGetValue(key, out var ticket) && !Expired(ticket, time.GetUtcNow());
    }

    private static bool Expired(AuthenticationTicket ticket, DateTimeOffset now) => ticket.Properties.ExpiresUtc is { } at && at <= now;
}
