using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Tests.Web;

/// <summary>
/// What the cookie handler does with the relay's sign-in pieces, without HTTP: a login stores a ticket and
/// protects its id into the cookie; a request unprotects the cookie and retrieves the ticket; a logout removes it.
/// </summary>
internal sealed class RelaySessions
{
    private const string SessionIdClaim = "Microsoft.AspNetCore.Authentication.Cookies-SessionId";
    private readonly SessionTicketStore _store;
    private readonly SessionCookieFormat _format;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;

    public RelaySessions(IOptions<BrowserViewingOptions> options, TimeProvider time, ISessionBackend backend)
    {
        Key = new SessionKey(options, backend is MemorySessionBackend ? null : backend);
        _store = new SessionTicketStore(time, backend);
        _format = new SessionCookieFormat(Key);
        _time = time;
        _lifetime = options.Value.SessionLifetime;
    }

    public SessionKey Key { get; }

    public async Task<string> CreateAsync(string user)
    {
        var ticket = new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, user)], RelaySignIn.Scheme)),
            new AuthenticationProperties { ExpiresUtc = _time.GetUtcNow() + _lifetime, IsPersistent = true }, RelaySignIn.Scheme);
        var id = await _store.StoreAsync(ticket);
        return _format.Protect(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(SessionIdClaim, id)])), RelaySignIn.Scheme));
    }

    public async Task<string?> ValidateAsync(string cookie)
    {
        if (_format.Unprotect(cookie)?.Principal.FindFirst(SessionIdClaim)?.Value is not { } id) return null;
        return (await _store.RetrieveAsync(id))?.Principal.Identity?.Name;
    }

    public async Task RemoveAsync(string cookie)
    {
        if (_format.Unprotect(cookie)?.Principal.FindFirst(SessionIdClaim)?.Value is { } id) await _store.RemoveAsync(id);
    }
}
