using System.Threading.Channels;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// The device's side of the tunnel channel on one connection. Tunnel control messages ride the control queue (ahead
/// of video, they are small); data and half-closes ride the tunnel queue, which the sender drains only when no frame waits.
/// </summary>
internal sealed class UplinkTunnelTransport(UplinkConnection state, UplinkSendQueue queue) : ITunnelTransport
{
    public bool SendControl(UplinkMessage message)
    {
        if (!state.Link.IsOpen || !state.Control.Writer.TryWrite(message)) return false;
        queue.Pulse();
        return true;
    }

    public async ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await state.TunnelOut.Writer.WriteAsync(message, cancellationToken);
        }
        catch (ChannelClosedException e)
        {
            throw new IOException("the uplink ended", e);
        }
        queue.Pulse();
    }
}
