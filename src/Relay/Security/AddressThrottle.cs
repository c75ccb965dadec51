using Microsoft.Extensions.Options;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Security;

/// <summary>
/// Failures counted per client address only, with the same growing lockouts as the login throttle: for
/// secrets that name no account a person could be locked out of (device tokens on <c>/uplink</c>, API tokens).
/// </summary>
public sealed class AddressThrottle
{
    private readonly LoginThrottle _throttle;

    /// <summary>Creates the throttle: <paramref name="freeFailures"/> misses per address, then a lockout from
    /// <paramref name="firstLockout"/> doubling to <paramref name="maxLockout"/>.</summary>
    public AddressThrottle(TimeProvider time, int freeFailures = 5, TimeSpan? firstLockout = null, TimeSpan? maxLockout = null)
    {
        _throttle = new LoginThrottle(Options.Create(new BrowserViewingOptions
        {
            FreeLoginFailures = freeFailures,
            FirstLockout = firstLockout ?? TimeSpan.FromSeconds(1),
            MaxLockout = maxLockout ?? TimeSpan.FromMinutes(5),
        }), time);
    }

    /// <summary>How long <paramref name="address"/> must still wait; zero when it may try now.</summary>
    public TimeSpan RetryAfter(string address) => _throttle.RetryAfter(address, Account(address));

    /// <summary>Counts a failure; returns the lockout it caused.</summary>
    public TimeSpan Failed(string address) => _throttle.Failed(address, Account(address));

    /// <summary>Forgets the address's failures.</summary>
    public void Succeeded(string address) => _throttle.Succeeded(address, Account(address));

    // The login throttle also counts per account; here the address is its own account.
    private static string Account(string address) => "\u0001address " + address;
}
