using Pinhole.Streaming;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Inbound;

/// <summary>
/// Sends one published stream down a device's uplink (docs/uplink-protocol.md, inbound media): the
/// stream's tracks as <see cref="InboundAnnounce"/>, each access unit as <see cref="InboundFrame"/>,
/// its end as <see cref="InboundEnd"/>. It reads from a <see cref="MediaSubscription"/>, whose queue is
/// bounded (2 s of video, 512 items): when the downlink cannot keep up, whole GOPs are dropped there
/// and the device continues at the next keyframe, so memory stays bounded and the device never gets
/// a frame whose references were dropped.
/// </summary>
internal static class InboundMediaSender
{
    /// <summary>Runs until the publication ends (<paramref name="publicationEnded"/>, or the stream goes offline
    /// after it was announced) or the session does (<paramref name="session"/>).</summary>
    public static async Task RunAsync(MediaSubscription subscription, ushort streamId, Func<UplinkMessage, CancellationToken, ValueTask> send,
        CancellationToken publicationEnded, CancellationToken session)
    {
        var name = subscription.Stream.Camera;
        var announced = false;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(publicationEnded, session);
        var ct = linked.Token;
        try
        {
            while (true)
            {
                MediaEvent evt;
                try
                {
                    evt = await subscription.ReadAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!session.IsCancellationRequested)
                {
                    // The publisher stopped before its Offline event was read: the device still hears of it.
                    if (announced) await send(new InboundEnd(streamId), session).ConfigureAwait(false);
                    return;
                }
                switch (evt.Kind)
                {
                    case MediaEventKind.Tracks:
                        await send(new InboundAnnounce(streamId, name, evt.Tracks!), session).ConfigureAwait(false);
                        announced = true;
                        break;
                    case MediaEventKind.Frame when announced:
                        await send(new InboundFrame(streamId, evt.Unit), session).ConfigureAwait(false);
                        break;
                    case MediaEventKind.Offline when announced:
                        // The publisher stopped: tell the device, and this sender is done. (Before the
                        // first announce the stream is offline only because nothing arrived yet.)
                        await send(new InboundEnd(streamId), session).ConfigureAwait(false);
                        return;
                }
            }
        }
        finally
        {
            subscription.Dispose();
        }
    }
}
