using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.Options;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Viewers;

namespace Pinhole.Relay.Web;

/// <summary>
/// Who may do what on the relay, the ASP.NET Core way: two authentication schemes — browser sessions
/// (<see cref="RelaySignIn.Scheme"/>, the cookie) and API tokens (<see cref="ApiTokenScheme"/>,
/// <c>Authorization: Bearer pht_…</c>) — chosen per request by the policy scheme <see cref="Scheme"/>, and
/// the authorization policies <see cref="AdminPolicy"/> and <see cref="ViewerPolicy"/> that endpoints require.
/// A user's role (<c>relay.json</c> <c>viewers[].role</c>) becomes a role claim; API tokens are admins.
/// How a refusal reads (JSON, a redirect to <c>/login</c>, a page) is each endpoint's own: see <see cref="RequireAccess"/>.
/// </summary>
public static class RelayAccess
{
    /// <summary>The policy scheme: the API token scheme when the request carries <c>Authorization: Bearer</c>, else the session cookie.</summary>
    public const string Scheme = "pinhole";

    /// <summary>The authentication scheme of API tokens.</summary>
    public const string ApiTokenScheme = "ApiToken";

    /// <summary>Policy: an admin (a user with <c>"role": "admin"</c>, or an API token).</summary>
    public const string AdminPolicy = "admin";

    /// <summary>Policy: anyone logged in (a viewer or an admin), or an API token.</summary>
    public const string ViewerPolicy = "viewer";

    /// <summary>The role claim value of admins.</summary>
    public const string AdminRole = "admin";

    internal static IServiceCollection AddRelayAccess(this IServiceCollection services)
    {
        services.AddAuthentication(RelaySignIn.Scheme)
            .AddScheme<AuthenticationSchemeOptions, ApiTokenHandler>(ApiTokenScheme, displayName: null, _ => { })
            .AddPolicyScheme(Scheme, displayName: null, o => o.ForwardDefaultSelector = c => HasBearer(c.Request) ? ApiTokenScheme : RelaySignIn.Scheme);
        // The session's user gets its role from the viewer list on every request (the store keeps only the name).
        services.AddOptions<Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationOptions>(RelaySignIn.Scheme).Configure(o =>
            o.Events.OnValidatePrincipal = c =>
            {
                if (c.Principal?.Identity is ClaimsIdentity { Name: { } user } identity
                    && c.HttpContext.RequestServices.GetService<ViewerDirectory>()?.IsAdmin(user) == true
                    && !identity.HasClaim(ClaimTypes.Role, AdminRole))
                    identity.AddClaim(new Claim(ClaimTypes.Role, AdminRole));
                return Task.CompletedTask;
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminPolicy, p => p.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser().RequireRole(AdminRole))
            .AddPolicy(ViewerPolicy, p => p.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser());
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, RefusalWriter>();
        return services;
    }

    /// <summary>
    /// Requires <paramref name="policy"/> on the endpoints; a request that fails it is answered by
    /// <paramref name="refuse"/> (given the user's name when logged in but not allowed, null when not logged in)
    /// instead of a bare challenge, so each part of the relay keeps its own way of saying no.
    /// </summary>
    public static TBuilder RequireAccess<TBuilder>(this TBuilder builder, string policy, Func<HttpContext, string?, IResult> refuse)
        where TBuilder : IEndpointConventionBuilder =>
        builder.RequireAuthorization(policy).WithMetadata(new Refusal(refuse));

    /// <summary>True when the request was authenticated by an API token (no ambient credential: exempt from Origin and antiforgery checks).</summary>
    public static bool IsToken(ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        return user.Identity is { IsAuthenticated: true, AuthenticationType: ApiTokenScheme };
    }

    /// <summary>True for admins: users with the admin role and API tokens.</summary>
    public static bool IsAdmin(ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        return user.Identity?.IsAuthenticated == true && user.IsInRole(AdminRole);
    }

    /// <summary>How the audit log names the caller: <c>token:NAME</c> or <c>user:NAME</c>.</summary>
    public static string Actor(ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        var name = user.Identity?.Name ?? throw new InvalidOperationException("the request is not authenticated");
        return (IsToken(user) ? "token:" : "user:") + name;
    }

    /// <summary>
    /// The caller of a request outside an authorized endpoint (the <c>/metrics</c> branch, WHEP with anonymous
    /// viewing): authenticates with <see cref="Scheme"/>; null when there is no valid credential.
    /// </summary>
    public static async Task<ClaimsPrincipal?> AuthenticateAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var result = await http.AuthenticateAsync(Scheme).ConfigureAwait(false);
        if (!result.Succeeded) return null;
        http.User = result.Principal;
        return result.Principal;
    }

    private static bool HasBearer(HttpRequest request) =>
        request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);

    /// <summary>Endpoint metadata: how the endpoint answers a request its policy refused.</summary>
    private sealed record Refusal(Func<HttpContext, string?, IResult> Write);

    private sealed class RefusalWriter : IAuthorizationMiddlewareResultHandler
    {
        private readonly AuthorizationMiddlewareResultHandler _default = new();

        public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
        {
            if ((authorizeResult.Challenged || authorizeResult.Forbidden) && context.GetEndpoint()?.Metadata.GetMetadata<Refusal>() is { } refusal)
            {
                var user = authorizeResult.Forbidden && context.User.Identity is { IsAuthenticated: true, Name: { } name } ? name : null;
                await refusal.Write(context, user).ExecuteAsync(context).ConfigureAwait(false);
                return;
            }
            await _default.HandleAsync(next, context, policy, authorizeResult).ConfigureAwait(false);
        }
    }

    /// <summary>API tokens (<see cref="ApiTokens"/>): <c>Authorization: Bearer pht_…</c>, checked against the fleet store.</summary>
    private sealed class ApiTokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var authorization = Request.Headers.Authorization.ToString();
            if (!HasBearer(Request)) return Task.FromResult(AuthenticateResult.NoResult());
            if (Context.RequestServices.GetService<IFleetStore>() is not { } store)
                return Task.FromResult(AuthenticateResult.Fail("this relay has no API tokens"));
            if (ApiTokens.Authenticate(store, authorization["Bearer ".Length..].Trim()) is not { } name)
                return Task.FromResult(AuthenticateResult.Fail("unknown API token"));
            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name), new Claim(ClaimTypes.Role, AdminRole)], ApiTokenScheme);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), ApiTokenScheme)));
        }

        protected override Task HandleChallengeAsync(AuthenticationProperties properties)
        {
            Response.StatusCode = StatusCodes.Status401Unauthorized;
            Response.Headers.WWWAuthenticate = "Bearer";
            return Task.CompletedTask;
        }
    }
}
