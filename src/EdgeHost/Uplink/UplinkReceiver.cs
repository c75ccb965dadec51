using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// Receives on one connection: answers pings, turns acks into the round trip, delivery and link rates and the in-flight
/// window the sender obeys, hands data, update, tunnel and inbound-media messages to their users, and runs the periodic
/// checks (dead link, heartbeats, drop reports) between reads.
/// </summary>
internal sealed class UplinkReceiver(Uri relay, UplinkConnection state, UplinkSendQueue queue, UplinkClientOptions options, UplinkClientMetrics metrics,
    TimeProvider time, ILogger logger, IUplinkDataHandler? dataHandler, Inbound.IInboundMediaHandler? inboundMedia)
{
    /// <summary>The receiving thread: reads until the relay closes or the link fails, handing each message to its user.</summary>
    public void Run(IPipelineContext context)
    {
        while (true)
        {
            var message = state.Link.Receive();
            var reply = state.Session.OnReceived(message);
            context.Heartbeat();
            switch (message)
            {
                case null:
                    return;
                case Ack ack:
                    OnAck(ack);
                    break;
                case Ping:
                    state.Control.Writer.TryWrite(reply!);
                    queue.Pulse();
                    break;
                case Pong:
                    metrics.SetRtt((ulong)state.Session.RoundTripTime!.Value.TotalMicroseconds);
                    break;
                case Goodbye bye:
                    if (bye.Reason == UplinkReason.Replaced) UplinkClientLog.Refused(logger, relay, $"relay said goodbye: {bye.Reason.ToToken()}: {bye.Text}");
                    break;
                case ConfigPush push when (state.Welcome.Capabilities & UplinkCapabilities.Data) != 0 && dataHandler is { } handler:
                    handler.OnMessage(push);
                    break;
                case ConfigPush:
                    break; // the data channel was not confirmed: ignore, as a v1 device would
                case UpdateOffer or UpdateChunk when (state.Welcome.Capabilities & (UplinkCapabilities.Data | UplinkCapabilities.Updates)) == (UplinkCapabilities.Data | UplinkCapabilities.Updates) && dataHandler is { } updates:
                    updates.OnMessage(message);
                    break;
                case UpdateOffer or UpdateChunk:
                    break; // updates not confirmed: ignore, as a device without them would
                case TunnelOpen or TunnelAccept or TunnelData or TunnelWindow or TunnelClose or TunnelReset:
                    state.Tunnels?.OnMessage(message); // ignored when tunnels were not confirmed, as a device without them would
                    break;
                case InboundAnnounce or InboundFrame or InboundEnd when (state.Welcome.Capabilities & UplinkCapabilities.InboundMedia) != 0 && inboundMedia is { } inbound:
                    inbound.OnMessage(message);
                    break;
                case InboundAnnounce or InboundFrame or InboundEnd:
                    break; // inbound media not confirmed: ignore, as a device without it would
                case UnknownMessage:
                    break; // a newer relay's extension; v1 skips it
                default:
                    throw new UplinkProtocolException($"{message.GetType().Name} is not valid from a relay once connected");
            }
        }
    }

    private void OnAck(Ack ack)
    {
        var now = state.Session.NowMicros();
        var rtt = (long)now - (long)ack.EchoTimestamp - ack.AckDelayMicros;
        if (ack.EchoTimestamp != 0 && ack.EchoTimestamp <= now) metrics.SetRtt((ulong)Math.Max(0, rtt));
        var at = time.GetTimestamp();
        lock (state.InFlightLock)
        {
            while (state.InFlight.Count > 0 && state.InFlight.Peek().Sequence <= ack.Sequence) state.InFlight.Dequeue();

            // Delivery rate from the relay's byte count between acks; the window is what the link
            // delivers in MaxUnackedAge, so queued bytes in socket buffers stay within that much delay.
            // Rates are bytes over time summed across many acks, never the best single interval: the
            // relay acks on a timer, and an ack that waited for a busy thread followed by one on time
            // makes an interval a few milliseconds long that "delivered" a quarter second of bytes.
            // The best of those read twice the real rate of a 1 Mbit/s link, and the queue then sent
            // frames that could not arrive in time.
            var dt = time.GetElapsedTime(state.LastAckAt, at);
            if (state.LastAckAt != 0 && dt >= TimeSpan.FromMilliseconds(20))
            {
                var delivered = (long)ack.BytesReceived - state.LastAckBytes;
                state.RateSamples.Enqueue((at, delivered, dt.TotalSeconds));
                while (time.GetElapsedTime(state.RateSamples.Peek().At, at) > UplinkConnection.DeliveryRateWindow) state.RateSamples.Dequeue();
                var rate = LinkRateFilter.RateOf(state.RateSamples);
                state.WindowBytes = Math.Max(UplinkConnection.MinWindowBytes, (long)(rate * options.MaxUnackedAge.TotalSeconds));

                // What the link itself can carry, for dropping frames that would arrive too late
                // (busy samples only; see LinkRateFilter).
                var link = state.LinkRate.Add(at, delivered, dt.TotalSeconds, busy: (long)ack.BytesReceived < state.SentAtLastAck);
                state.BytesPerSecond = link > 0 ? Math.Max(link, rate) : 0;
                var measured = link > 0 ? state.BytesPerSecond : rate;
                metrics.SetLinkRate(measured);

                // The kernel keeps at most SendBacklog of the link's time unsent: the rest waits in
                // the queue, where a slow link drops by GOP instead of adding delay.
                var lowWatermark = (long)(measured * options.SendBacklog.TotalSeconds);
                if (lowWatermark > state.LowWatermark * 5 / 4 || lowWatermark < state.LowWatermark * 3 / 4)
                {
                    state.LowWatermark = lowWatermark;
                    state.Link.SetSendLowWatermark((int)Math.Min(int.MaxValue, lowWatermark));
                }
            }
            state.SentAtLastAck = state.Link.MediaBytesSent;
            state.LastAckAt = at;
            state.LastAckBytes = (long)ack.BytesReceived;
            state.AckedBytes = (long)ack.BytesReceived;
        }
        var inFlight = Math.Max(0, state.Link.MediaBytesSent - (long)ack.BytesReceived);
        metrics.SetInFlight(inFlight);
        // An ack can only let frames move that wait in the queue (held back by congestion); with
        // none queued, waking the sender at every ack would be for nothing.
        if (queue.HasFrames) queue.Pulse();
    }

    /// <summary>The periodic checks (dead link, pings, tunnel reaping, drop reports); runs on the receiving thread about once
    /// a tick while it waits (see <see cref="UplinkClientConnection.WhileWaiting"/>), so never concurrently with it.</summary>
    public void Housekeep()
    {
        if (!state.Link.IsOpen) return;
        state.Tunnels?.Reap();
        var silence = state.Session.Silence;
        var tick = state.Session.Tick();
        if (tick.DeadLink is not null)
        {
            UplinkClientLog.DeadLink(logger, relay, silence);
            metrics.DeadLink();
            state.Link.Abort();
            return;
        }
        if (tick.Ping is { } ping)
        {
            state.Control.Writer.TryWrite(ping);
            queue.Pulse();
        }
        if ((state.Welcome.Capabilities & UplinkCapabilities.DropReports) != 0 && time.GetElapsedTime(state.LastReport) >= options.DropReportInterval)
        {
            state.LastReport = time.GetTimestamp();
            foreach (var camera in queue.Cameras)
            {
                // Only for streams the relay knows on this connection; totals are cumulative.
                if (!state.Announced.ContainsKey(camera.StreamId)) continue;
                var dropped = camera.DroppedFrames;
                if (state.ReportedDrops.TryGetValue(camera.StreamId, out var reported) && reported == dropped) continue;
                state.ReportedDrops[camera.StreamId] = dropped;
                state.Control.Writer.TryWrite(new DropReport(camera.StreamId, (ulong)dropped, (ulong)camera.DroppedBytes));
                queue.Pulse();
            }
        }
    }
}
