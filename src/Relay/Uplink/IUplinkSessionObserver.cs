using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Uplink;

/// <summary>
/// Features built on the uplink (the fleet: configuration push, device state) hear about sessions
/// through this, so the session itself stays about the protocol. Registered in DI; optional.
/// </summary>
public interface IUplinkSessionObserver
{
    /// <summary>The session was welcomed and is the device's live uplink. Runs before the receive loop starts.</summary>
    Task OnConnectedAsync(RelayUplinkSession session, CancellationToken cancellationToken);

    /// <summary>A data-channel message arrived (only when both sides confirmed <see cref="UplinkCapabilities.Data"/>).
    /// Runs on the receive loop: keep it short.</summary>
    ValueTask OnDataAsync(RelayUplinkSession session, UplinkMessage message, CancellationToken cancellationToken);

    /// <summary>The session ended; <paramref name="wasLive"/> is false when a newer uplink had replaced it.</summary>
    void OnEnded(RelayUplinkSession session, bool wasLive);
}
