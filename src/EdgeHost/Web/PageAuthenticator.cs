using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Transport.Security;

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
/// Checks page passwords against the PBKDF2 hash of <c>web.password</c>, through the shared
/// <see cref="LoginThrottle"/>: per client address, and for the page's single account, so guesses spread over
/// many addresses are slowed too. An address that logged in before is not held by the account's lockout (else
/// anyone could keep the owner out).
/// </summary>
public sealed partial class PageAuthenticator
{
    private const string Account = "page";
    private readonly Lazy<PasswordHash?> _hash;
    private readonly LoginThrottle _throttle;
    private readonly ILogger<PageAuthenticator> _logger;

    public PageAuthenticator(EdgeConfig config, LoginThrottle throttle, ILogger<PageAuthenticator> logger)
    {
        var password = config.Web.Password;
        // Hashed on first use, not at start-up: PBKDF2 costs tens of milliseconds on a Pi.
        _hash = new Lazy<PasswordHash?>(() => password is null ? null : PasswordHash.FromConfig(password));
        _throttle = throttle;
        _logger = logger;
    }

    /// <summary>Checks <paramref name="password"/> from <paramref name="client"/>; <paramref name="retryAfter"/> is the lockout when refused.</summary>
    public LoginOutcome TryLogin(string client, string? password, out TimeSpan retryAfter)
    {
        retryAfter = _throttle.RetryAfter(client, Account);
        if (retryAfter > TimeSpan.Zero)
        {
            LogLockedOut(_logger, client, retryAfter);
            return LoginOutcome.LockedOut;
        }
        var hash = _hash.Value;
        if (hash is null) return LoginOutcome.NoPasswordConfigured;
        if (!string.IsNullOrEmpty(password) && password.Length <= 1024 && hash.Verify(password))
        {
            _throttle.Succeeded(client, Account);
            LogLoggedIn(_logger, client);
            return LoginOutcome.Success;
        }
        retryAfter = _throttle.Failed(client, Account);
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
