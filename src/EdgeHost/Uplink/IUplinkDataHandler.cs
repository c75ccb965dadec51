using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// What the device does with the uplink's data channel (the fleet agent: desired configuration in,
/// outcomes and status out). The <see cref="UplinkClient"/> offers the channel only when a handler is set.
/// Calls come from the uplink's threads: a handler hands work off and returns at once.
/// </summary>
public interface IUplinkDataHandler
{
    /// <summary>
    /// A session was welcomed. <paramref name="send"/> queues a data-channel message on it (false once the
    /// session is gone); it is null when the relay did not confirm the data channel (an older relay).
    /// </summary>
    void OnConnected(Uri relay, Func<UplinkMessage, bool>? send);

    /// <summary>A data-channel message from the relay (<see cref="ConfigPush"/>).</summary>
    void OnMessage(UplinkMessage message);

    /// <summary>The session ended; the sender given to <see cref="OnConnected"/> no longer works.</summary>
    void OnDisconnected();
}
