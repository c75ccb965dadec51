using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;

namespace Pinhole.EdgeHost.Web;

/// <summary>The outcome of one login attempt.</summary>
public enum LoginOutcome
{
    /// <summary>Right password.</summary>
    Success,

    /// <summary>Wrong password.</summary>
    WrongPassword,

    /// <summary>Refused without checking: the client is locked out.</summary>
    LockedOut,

    /// <summary>No <c>web.password</c> configured, so nobody can log in.</summary>
    NoPasswordConfigured,
}

/// <summary>
/// Checks page passwords against the PBKDF2 hash of <c>web.password</c>, through two throttles: one per client
/// address, and one for the page's single account, so guesses spread over many addresses are slowed too. An
/// address that logged in before is not held by the account's lockout (else anyone could keep the owner out).
/// </summary>
public sealed partial class PageAuthenticator
{
    private const string Account = "\u0001page account";
    private const int MaxKnownClients = 256;
    private readonly Lazy<PasswordHash?> _hash;
    private readonly LoginThrottle _throttle;
    private readonly LoginThrottle _accountThrottle;
    private readonly HashSet<string> _knownClients = new(StringComparer.Ordinal);
    private readonly Lock _knownLock = new();
    private readonly ILogger<PageAuthenticator> _logger;

    public PageAuthenticator(EdgeConfig config, LoginThrottle throttle, LoginThrottleOptions options, TimeProvider time, ILogger<PageAuthenticator> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var password = config.Web.Password;
        // Hashed on first use, not at start-up: PBKDF2 costs tens of milliseconds on a Pi.
        _hash = new Lazy<PasswordHash?>(() => password is null ? null : PasswordHash.FromConfig(password));
        _throttle = throttle;
        _accountThrottle = new LoginThrottle(new LoginThrottleOptions
        {
            FreeAttempts = options.FreeAttemptsPerAccount,
            FirstLockout = options.FirstLockout,
            MaxLockout = options.MaxLockout,
        }, time);
        _logger = logger;
    }

    /// <summary>Checks <paramref name="password"/> from <paramref name="client"/>; <paramref name="retryAfter"/> is the lockout when refused.</summary>
    public LoginOutcome TryLogin(string client, string? password, out TimeSpan retryAfter)
    {
        retryAfter = _throttle.LockedFor(client);
        bool known;
        lock (_knownLock) known = _knownClients.Contains(client);
        if (!known)
        {
            var account = _accountThrottle.LockedFor(Account);
            if (account > retryAfter) retryAfter = account;
        }
        if (retryAfter > TimeSpan.Zero)
        {
            LogLockedOut(_logger, client, retryAfter);
            return LoginOutcome.LockedOut;
        }
        var hash = _hash.Value;
        if (hash is null) return LoginOutcome.NoPasswordConfigured;
        if (!string.IsNullOrEmpty(password) && password.Length <= 1024 && hash.Verify(password))
        {
            _throttle.Succeeded(client);
            _accountThrottle.Succeeded(Account);
            lock (_knownLock)
            {
                if (_knownClients.Count >= MaxKnownClients) _knownClients.Clear();
                _knownClients.Add(client);
            }
            LogLoggedIn(_logger, client);
            return LoginOutcome.Success;
        }
        retryAfter = _throttle.Failed(client);
        var accountLockout = _accountThrottle.Failed(Account);
        if (!known && accountLockout > retryAfter) retryAfter = accountLockout;
        LogWrongPassword(_logger, client, retryAfter);
        return LoginOutcome.WrongPassword;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "page login from {Client}")]
    private static partial void LogLoggedIn(ILogger logger, string client);

    [LoggerMessage(Level = LogLevel.Warning, Message = "wrong page password from {Client}; locked out for {Lockout}")]
    private static partial void LogWrongPassword(ILogger logger, string client, TimeSpan lockout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "page login from {Client} refused: locked out for {Remaining}")]
    private static partial void LogLockedOut(ILogger logger, string client, TimeSpan remaining);
}
