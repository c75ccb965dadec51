using Microsoft.Extensions.Logging;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// Sends on one connection: frames from the send queue (announcing streams first, holding frames back while the link
/// is congested), control messages, ended streams, and tunnel data when no frame waits.
/// </summary>
/// <remarks>
/// Sending runs where it costs least. A camera's thread that just queued a frame sends it itself (<see cref="TrySendInline"/>)
/// when nobody else is sending and the socket takes it at once (the usual case on a healthy link): no thread is woken.
/// Otherwise the sender thread (<see cref="Run"/>) is pulsed and carries on, blocking on the socket when the link is slow
/// while the time-bounded queue drops by GOP. Before, every frame woke a sender on the thread pool, and the pool woke more
/// threads to keep up parallelism: about fourteen futex calls per frame, most of the edge's CPU at 30 fps.
/// </remarks>
internal sealed class UplinkSender(UplinkConnection state, UplinkSendQueue queue, UplinkClientOptions options, UplinkClientMetrics metrics,
    TimeProvider time, ILogger logger)
{
    /// <summary>The connection this sender sends on.</summary>
    public UplinkConnection Connection => state;

    /// <summary>On a camera's thread: sends what it can without blocking; false when the sender thread must take over (the caller pulses it).</summary>
    public bool TrySendInline()
    {
        if (!state.PumpLock.TryEnter()) return false;
        var done = false;
        try
        {
            done = Pump(inline: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The link failed under this camera's thread; end the connection as the sender would.
            state.Session.Close("send failed: " + UplinkClient.Describe(e));
            state.Link.Abort();
        }
        finally
        {
            state.PumpLock.Exit();
        }
        return done;
    }

    /// <summary>The sender thread: sends what camera threads left (control messages, announcements, a send that did not
    /// finish at once, frames while the link is slow), blocking where it has to, until cancelled or the link fails.</summary>
    public void Run(CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            lock (state.PumpLock) Pump(inline: false);
            // Every change that can let the pump move on pulses the queue: a frame a camera thread
            // could not send, a control message, an ended stream, an ack (congestion only eases with
            // acks), and stopping (the wait is cancelled). Tunnel data held back by the socket's backlog
            // has no such signal: the pump looks again after the time the backlog needs to drain.
            if (state.TunnelPoll is { } poll)
            {
                state.TunnelPoll = null;
                queue.Wait(poll, ct);
            }
            else queue.Wait(ct);
        }
    }

    // Sends until nothing is sendable (true) or, inline, until a send did not finish at once (false:
    // the sender thread takes over). The caller holds PumpLock.
    private bool Pump(bool inline)
    {
        var ct = state.Sending;
        if (inline && ct.IsCancellationRequested) return false;
        if (state.Link.HasPendingBytes)
        {
            if (inline) return false;
            state.Link.FlushPending(ct); // the sender thread waits here; a failure ends the connection
        }
        if (state.Carry is { } carried)
        {
            state.Carry = null;
            if (!SendFrame(carried, inline)) return false;
        }
        var maxPayload = state.Welcome.MaxMessageBytes - (UplinkProtocol.FrameHeaderSize - UplinkProtocol.HeaderSize);
        while (!ct.IsCancellationRequested)
        {
            while (state.Control.Reader.TryRead(out var control))
                if (!Sent(state.Link.TrySend(control), inline)) return false;
            while (queue.TryTakeEnded(out var ended))
            {
                // Only a stream the relay knows this connection; the next frame re-announces it.
                if (state.Announced.TryRemove(ended!.StreamId, out _)
                    && !Sent(state.Link.TrySend(new StreamEnd(ended.StreamId)), inline)) return false;
            }

            // Delay must not hide in socket buffers: while the oldest unacknowledged frame is too
            // old, hold frames back here, where the time-bounded queue can drop them by GOP.
            bool congested;
            long unacked;
            double rate;
            long ahead;
            lock (state.InFlightLock)
            {
                unacked = state.Link.MediaBytesSent - state.AckedBytes;
                rate = state.BytesPerSecond;
                congested = state.InFlight.Count > 0
                    && (time.GetElapsedTime(state.InFlight.Peek().SentAt) > options.MaxUnackedAge || unacked >= state.WindowBytes);
                // What still has to cross the link before a new frame: the relay acks every quarter
                // second or so, and what the link delivered since the last ack is no longer ahead.
                // Counting it (as before) made every frame look up to an ack interval later than it
                // would be, and the queue dropped frames that would have arrived in time.
                ahead = state.LastAckAt == 0 ? unacked
                    : Math.Max(0, unacked - (long)(rate * time.GetElapsedTime(state.LastAckAt).TotalSeconds));
            }
            if (congested) return true;
            if (!queue.TryDequeue(out var frame, ahead, rate))
            {
                // Nothing of video waits: tunnel data may go (by the sender thread only, which may block on it),
                // as long as the socket does not already hold more than SendBacklog of the link's time beyond
                // its RTT: bulk bytes in flight sit in the bottleneck's queue ahead of the next frame.
                if (inline || state.TunnelOut.Reader.Count == 0 || TunnelHeldBack()) return true;
                if (!state.TunnelOut.Reader.TryRead(out var tunnel)) return true;
                Sent(state.Link.TrySend(tunnel), inline: false);
                continue;
            }
            var camera = frame.Camera;
            if (frame.Unit.Data.Length > maxPayload)
            {
                UplinkClientLog.FrameTooLarge(logger, camera.Name, frame.Unit.Data.Length);
                camera.Drop(frame.Unit.Data.Length);
                continue;
            }
            if (!state.Announced.TryGetValue(camera.StreamId, out var announced) || !ReferenceEquals(announced, frame.Tracks))
            {
                state.Announced[camera.StreamId] = frame.Tracks;
                if (!Sent(state.Link.TrySend(new StreamAnnounce(camera.StreamId, camera.Name, frame.Tracks)), inline))
                {
                    state.Carry = frame;
                    return false;
                }
            }
            if (!SendFrame(frame, inline)) return false;
        }
        return true;
    }

    // Tunnel bytes count against a budget below the queue (TunnelBudget). Without it a bulk stream, sent whenever no frame
    // waited, grew TCP's window into the bottleneck's queue (200 ms of it behind a tbf cap), and every frame waited behind it:
    // +370 ms at the 95th percentile with a 4 Mbit/s camera on a 20 Mbit/s link (benchmark tunnel). When held back, the
    // sender looks again once the excess should have drained.
    private bool TunnelHeldBack()
    {
        if (state.Link.SendQueue is not { } socket) return false; // no TCP_INFO: as before, video-first only
        if (!state.TunnelBudget.HeldBack(socket, out var poll)) return false;
        state.TunnelPoll = poll;
        return true;
    }

    private bool SendFrame(QueuedFrame frame, bool inline)
    {
        var camera = frame.Camera;
        var sequence = ++state.Sequence;
        lock (state.InFlightLock) state.InFlight.Enqueue((sequence, time.GetTimestamp()));
        var taken = state.Link.TrySendFrame(sequence, camera.StreamId, state.Session.NowMicros(), frame.Unit);
        metrics.FrameSent(frame.Unit.Data.Length);
        camera.CountSent();
        return Sent(taken, inline);
    }

    // A message the kernel took at once costs nothing more. Otherwise its tail is pending: the sender
    // thread pushes it out now, and a camera thread leaves it to the sender thread (false).
    private bool Sent(bool taken, bool inline)
    {
        if (taken) return true;
        if (inline) return false;
        state.Link.FlushPending(state.Sending);
        return true;
    }
}
