using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.Options;

namespace Pinhole.Relay.Web;

/// <summary>
/// Browser sign-in to the relay with ASP.NET Core's cookie handler. The cookie (<see cref="CookieName"/>)
/// holds only a random session id and its HMAC-SHA256 (<see cref="SessionCookieFormat"/>); the session itself
/// is kept server-side by <see cref="SessionTicketStore"/> in an <see cref="ISessionBackend"/> — the shared
/// database when several relays serve one fleet (docs/scale-out.md), else memory — so a logout ends it on
/// every relay and a login made on one relay is honoured by all.
/// </summary>
public static class RelaySignIn
{
    /// <summary>Name of the session cookie.</summary>
    public const string CookieName = "pinhole_session";

    /// <summary>Name of the device cookie: proof that this browser logged in as a user before (see the login throttle).</summary>
    public const string DeviceCookieName = "pinhole_device";

    /// <summary>Name of the antiforgery cookie.</summary>
    public const string AntiforgeryCookieName = "pinhole_csrf";

    /// <summary>Header the relay's scripts send the antiforgery token in.</summary>
    public const string TokenHeader = "X-CSRF-Token";

    /// <summary>Form field the relay's forms send the antiforgery token in.</summary>
    public const string TokenField = "csrf";

    /// <summary>The authentication scheme of browser sessions.</summary>
    public const string Scheme = CookieAuthenticationDefaults.AuthenticationScheme;

    /// <summary>Folder of the data-protection key ring under <see cref="BrowserViewingOptions.DataDir"/> (one relay without a shared database).</summary>
    public const string KeyRingDirectory = "keys";

    /// <summary>
    /// Makes sure the key ring has a usable key before the relay serves, created under the shared database's lock
    /// when there is one: relays starting together against an empty table then share one first key instead of
    /// making one each (each would refuse the others' tokens until it next reads the ring).
    /// </summary>
    internal static void PrepareKeyRing(IServiceProvider services)
    {
        var keys = services.GetRequiredService<IKeyManager>();
        void CreateUnlessUsable()
        {
            var now = DateTimeOffset.UtcNow;
            if (!keys.GetAllKeys().Any(k => !k.IsRevoked && k.ActivationDate <= now && k.ExpirationDate > now + TimeSpan.FromDays(2)))
                keys.CreateNewKey(now, now + TimeSpan.FromDays(90));
        }
        if (services.GetService<ISessionBackend>() is Fleet.PostgresFleetStore shared) shared.WithKeyRingLock(CreateUnlessUsable);
        else if (services.GetRequiredService<IOptions<KeyManagementOptions>>().Value.XmlRepository is not null) CreateUnlessUsable();
    }

    internal static IServiceCollection AddRelaySignIn(this IServiceCollection services)
    {
        services.TryAddSingletonService<SessionKey>();
        services.TryAddSingletonService<SessionTicketStore>();
        services.AddAuthentication(Scheme).AddCookie(Scheme);
        services.AddRelayAccess();
        // The data-protection key ring (antiforgery tokens): in the shared database when there is one, so a token
        // one relay issued is honoured by the others; else in dataDir/keys, so a restart keeps it.
        services.AddDataProtection().SetApplicationName("pinhole-relay");
        // Changes made with the session cookie carry a token only the relay's own pages know (the cookie is ambient).
        services.AddAntiforgery(o =>
        {
            o.HeaderName = TokenHeader;
            o.FormFieldName = TokenField;
            o.Cookie.Name = AntiforgeryCookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.Path = "/";
            o.SuppressXFrameOptionsHeader = true; // the pages send DENY themselves
        });
        services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider, IOptions<BrowserViewingOptions>, ILoggerFactory>((o, sp, viewing, logs) =>
        {
            if (sp.GetService<ISessionBackend>() is IXmlRepository shared) o.XmlRepository = shared;
            else if (viewing.Value.DataDir is { Length: > 0 } dataDir)
                o.XmlRepository = new FileSystemXmlRepository(KeyRingFolder(Path.Combine(dataDir, KeyRingDirectory)), logs);
        });
        services.AddOptions<CookieAuthenticationOptions>(Scheme)
            .Configure<IOptions<BrowserViewingOptions>, SessionTicketStore, SessionKey, TimeProvider>((o, viewing, store, key, time) =>
            {
                o.Cookie.Name = CookieName;
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax; // Strict would drop the cookie when a shared /play link is opened
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.Cookie.Path = "/";
                o.Cookie.IsEssential = true;
                o.ExpireTimeSpan = viewing.Value.SessionLifetime;
                o.SlidingExpiration = false; // an absolute lifetime, as documented
                o.SessionStore = store;
                o.TicketDataFormat = new SessionCookieFormat(key);
                o.TimeProvider = time;
                // Pages send the browser to /login themselves; everything else gets a plain 401/403.
                o.Events.OnRedirectToLogin = c => { c.Response.StatusCode = StatusCodes.Status401Unauthorized; return Task.CompletedTask; };
                o.Events.OnRedirectToAccessDenied = c => { c.Response.StatusCode = StatusCodes.Status403Forbidden; return Task.CompletedTask; };
            });
        return services;
    }

    // Only the relay's user may read the keys (as browser-session.key is 0600).
    private static DirectoryInfo KeyRingFolder(string path)
    {
        if (!Directory.Exists(path))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
            else Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        return new DirectoryInfo(path);
    }

    private static void TryAddSingletonService<T>(this IServiceCollection services) where T : class =>
        Microsoft.Extensions.DependencyInjection.Extensions.ServiceCollectionDescriptorExtensions.TryAddSingleton<T>(services);

    /// <summary>The antiforgery token to put in a page (its cookie is set on the response).</summary>
    public static string IssueToken(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context).RequestToken ?? "";
    }

    /// <summary>
    /// Null when the request may change something: it is safe (GET, HEAD…), or authenticated by an API token (no
    /// ambient credential), or carries a valid antiforgery token (header <see cref="TokenHeader"/> or form field
    /// <see cref="TokenField"/>) for its session. Else why not, for a 400.
    /// </summary>
    public static async Task<string?> WhyForgedAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var method = context.Request.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method)) return null;
        if (RelayAccess.IsToken(context.User)) return null;
        try
        {
            await context.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(context).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (e is AntiforgeryValidationException or InvalidDataException or IOException or BadHttpRequestException)
        {
            // A form that cannot be read carries no token either.
            return $"a change made with a session cookie needs the antiforgery token of the relay's own page (header {TokenHeader} or form field {TokenField}); reload the page and try again";
        }
    }

    /// <summary>Signs <paramref name="user"/> in (after the password was checked): a session that lasts
    /// <see cref="BrowserViewingOptions.SessionLifetime"/>.</summary>
    public static Task SignInAsync(HttpContext context, string user)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.SignInAsync(Scheme, new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, user)], Scheme)),
            new AuthenticationProperties { IsPersistent = true });
    }
}

/// <summary>
/// The key that signs session and device cookies: from the shared <see cref="ISessionBackend"/> when there is
/// one (so every relay checks the others' cookies), else <c>browser-session.key</c> in
/// <see cref="BrowserViewingOptions.DataDir"/> (0600, created when missing), else random per start.
/// </summary>
public sealed class SessionKey
{
    private readonly byte[] _key;

    /// <summary>Loads or creates the key.</summary>
    public SessionKey(IOptions<BrowserViewingOptions> options, ISessionBackend? backend = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _key = backend is not null
            ? backend.GetOrCreateSecret("browser-session-key", RandomNumberGenerator.GetBytes(32))
            : LoadKey(options.Value.DataDir);
    }

    /// <summary>The base64url HMAC-SHA256 of <paramref name="text"/> under the key.</summary>
    public string Sign(string text) => Base64Url(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(text)));

    /// <summary>True when <paramref name="signature"/> is <paramref name="text"/>'s, compared in constant time.</summary>
    public bool Verify(string text, string signature) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Sign(text)), Encoding.ASCII.GetBytes(signature));

    internal static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] LoadKey(string? dataDir)
    {
        if (string.IsNullOrEmpty(dataDir)) return RandomNumberGenerator.GetBytes(32);
        Directory.CreateDirectory(dataDir);
        var path = Path.Combine(dataDir, "browser-session.key");
        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            if (existing.Length >= 32) return existing;
        }
        var key = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var f = new FileStream(path, options)) f.Write(key);
        return key;
    }
}

/// <summary>
/// The session cookie's value: <c>ID.HMAC</c>. With a ticket store the cookie handler only ever protects a
/// ticket naming the session id, so nothing else needs to travel; signing with the <see cref="SessionKey"/>
/// (not per-relay data-protection keys) lets every relay of a fleet read the others' cookies, and refuses a
/// cookie not issued by the fleet before any lookup.
/// </summary>
internal sealed class SessionCookieFormat(SessionKey key) : ISecureDataFormat<AuthenticationTicket>
{
    // The claim the cookie handler puts the ticket store's key in (CookieAuthenticationHandler.SessionIdClaim).
    private const string SessionIdClaim = "Microsoft.AspNetCore.Authentication.Cookies-SessionId";
    private const int MaxLength = 200;

    public string Protect(AuthenticationTicket data) => Protect(data, purpose: null);

    public string Protect(AuthenticationTicket data, string? purpose)
    {
        ArgumentNullException.ThrowIfNull(data);
        var id = data.Principal.FindFirst(SessionIdClaim)?.Value
            ?? throw new InvalidOperationException("the relay's session cookie names a stored session only (CookieAuthenticationOptions.SessionStore must be set)");
        return id + "." + key.Sign(id);
    }

    public AuthenticationTicket? Unprotect(string? protectedText) => Unprotect(protectedText, purpose: null);

    public AuthenticationTicket? Unprotect(string? protectedText, string? purpose)
    {
        if (string.IsNullOrEmpty(protectedText) || protectedText.Length > MaxLength) return null;
        var dot = protectedText.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0) return null;
        var id = protectedText[..dot];
        if (!key.Verify(id, protectedText[(dot + 1)..])) return null;
        return new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(SessionIdClaim, id)])), RelaySignIn.Scheme);
    }
}

/// <summary>
/// The cookie handler's server-side sessions, in an <see cref="ISessionBackend"/> (the shared database, or
/// <see cref="MemorySessionBackend"/>). Stored by the SHA-256 of their id, so the store never holds a usable cookie.
/// </summary>
public sealed class SessionTicketStore : ITicketStore
{
    private readonly ISessionBackend _backend;
    private readonly TimeProvider _time;
    private long _nextSweep;

    /// <summary>Creates the store over the shared backend when there is one, else over memory.</summary>
    public SessionTicketStore(TimeProvider time, ISessionBackend? backend = null)
    {
        _time = time;
        _backend = backend ?? new MemorySessionBackend();
    }

    /// <inheritdoc/>
    public Task<string> StoreAsync(AuthenticationTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        Sweep();
        var id = SessionKey.Base64Url(RandomNumberGenerator.GetBytes(32));
        _backend.PutSession(Hash(id), UserOf(ticket), ExpiresOf(ticket));
        return Task.FromResult(id);
    }

    /// <inheritdoc/>
    public Task RenewAsync(string key, AuthenticationTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (_backend.GetSession(Hash(key)) is not null) _backend.PutSession(Hash(key), UserOf(ticket), ExpiresOf(ticket));
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<AuthenticationTicket?> RetrieveAsync(string key)
    {
        if (_backend.GetSession(Hash(key)) is not { } found || found.Expires <= _time.GetUtcNow())
            return Task.FromResult<AuthenticationTicket?>(null);
        var principal = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, found.User)], RelaySignIn.Scheme));
        return Task.FromResult<AuthenticationTicket?>(new AuthenticationTicket(principal,
            new AuthenticationProperties { ExpiresUtc = found.Expires, IsPersistent = true }, RelaySignIn.Scheme));
    }

    /// <inheritdoc/>
    public Task RemoveAsync(string key)
    {
        _backend.RemoveSession(Hash(key));
        return Task.CompletedTask;
    }

    private static string UserOf(AuthenticationTicket ticket) =>
        ticket.Principal.Identity?.Name ?? throw new InvalidOperationException("a session needs a user name");

    private DateTimeOffset ExpiresOf(AuthenticationTicket ticket) => ticket.Properties.ExpiresUtc ?? _time.GetUtcNow() + TimeSpan.FromHours(12);

    private static byte[] Hash(string id) => SHA256.HashData(Encoding.ASCII.GetBytes(id));

    private void Sweep()
    {
        var now = _time.GetUtcNow();
        if (now.UtcTicks < Interlocked.Read(ref _nextSweep)) return;
        Interlocked.Exchange(ref _nextSweep, (now + TimeSpan.FromMinutes(1)).UtcTicks);
        _backend.RemoveExpiredSessions(now);
    }
}

/// <summary>Sessions of a single relay, in memory (a restart logs everyone out). Bounded.</summary>
public sealed class MemorySessionBackend : ISessionBackend
{
    private const int MaxSessions = 100_000;
    private readonly ConcurrentDictionary<string, (string User, DateTimeOffset Expires)> _sessions = new(StringComparer.Ordinal);

    /// <summary>Sessions held now.</summary>
    public int Count => _sessions.Count;

    /// <inheritdoc/>
    public byte[] GetOrCreateSecret(string name, byte[] candidate) => candidate;

    /// <inheritdoc/>
    public void PutSession(byte[] idHash, string user, DateTimeOffset expires)
    {
        if (_sessions.Count >= MaxSessions) throw new InvalidOperationException("too many sessions");
        _sessions[Convert.ToHexString(idHash)] = (user, expires);
    }

    /// <inheritdoc/>
    public (string User, DateTimeOffset Expires)? GetSession(byte[] idHash) =>
        _sessions.TryGetValue(Convert.ToHexString(idHash), out var s) ? s : null;

    /// <inheritdoc/>
    public void RemoveSession(byte[] idHash) => _sessions.TryRemove(Convert.ToHexString(idHash), out _);

    /// <inheritdoc/>
    public int RemoveExpiredSessions(DateTimeOffset now)
    {
        var removed = 0;
        foreach (var (id, s) in _sessions)
            if (s.Expires <= now && _sessions.TryRemove(id, out _)) removed++;
        return removed;
    }
}

/// <summary>
/// The device cookie (<see cref="RelaySignIn.DeviceCookieName"/>): issued after a successful login, it lets
/// that browser past the per-user lockout of the login throttle (OWASP's "device cookies"). Signed with the
/// <see cref="SessionKey"/>, so every relay of a fleet honours it.
/// </summary>
public sealed class DeviceCookies(SessionKey key, TimeProvider time)
{
    /// <summary>How long a device cookie is honoured.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromDays(90);

    /// <summary>A signed device cookie for <paramref name="user"/>.</summary>
    public (string CookieValue, DateTimeOffset Expires) Create(string user)
    {
        var expires = time.GetUtcNow() + Lifetime;
        var body = $"{SessionKey.Base64Url(Encoding.UTF8.GetBytes(user))}.{SessionKey.Base64Url(RandomNumberGenerator.GetBytes(16))}.{expires.ToUnixTimeSeconds()}";
        return ($"{body}.{key.Sign("device:" + body)}", expires);
    }

    /// <summary>The device id of a valid, unexpired device cookie issued to <paramref name="user"/>; null otherwise.</summary>
    public string? DeviceOf(string? cookieValue, string user)
    {
        if (string.IsNullOrEmpty(cookieValue) || cookieValue.Length > 600) return null;
        var parts = cookieValue.Split('.');
        if (parts.Length != 4) return null;
        var body = $"{parts[0]}.{parts[1]}.{parts[2]}";
        if (!key.Verify("device:" + body, parts[3])) return null;
        if (!long.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var expires)
            || expires <= time.GetUtcNow().ToUnixTimeSeconds()) return null;
        return parts[0] == SessionKey.Base64Url(Encoding.UTF8.GetBytes(user)) ? parts[1] : null;
    }
}
