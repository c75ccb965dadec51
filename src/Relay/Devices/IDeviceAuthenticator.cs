namespace Pinhole.Relay.Devices;

/// <summary>Decides whether a device may open an uplink. Implemented by the device registry
/// (devices from relay.json plus those added with <c>pinhole-relay devices add</c>).</summary>
public interface IDeviceAuthenticator
{
    /// <summary>True when <paramref name="deviceId"/> is known and <paramref name="token"/> is its token.
    /// Compares in constant time; never logs the token.</summary>
    ValueTask<bool> AuthenticateAsync(string deviceId, string token, CancellationToken cancellationToken);
}
