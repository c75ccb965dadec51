using Pinhole.Transport.Media;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Metrics;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// The device's send queue, bounded in time: a frame older than <see cref="MaxDelay"/> is never
/// sent. When a camera's queue overflows (its oldest frame is too old, or the byte cap is hit) the
/// camera's frames are dropped up to its next keyframe, so the relay only ever sees whole GOPs or
/// GOPs cut at their end, never a GOP missing its start. Frames of all cameras leave in arrival order.
/// </summary>
public sealed class UplinkSendQueue
{
    private readonly Lock _lock = new();
    private readonly List<CameraQueue> _cameras = [];
    private readonly TimeProvider _time;
    private readonly ObservedSeries _droppedFrames, _droppedBytes, _sentFrames;
    // The sender's wake-up: Pulse never blocks and coalesces. The sender is one dedicated thread
    // that blocks on it (see UplinkClient.SendLoop), so a frame costs one wake of that thread and no
    // thread-pool work item or timer.
    private readonly ManualResetEventSlim _pulse = new(false, spinCount: 1);
    private long _order, _bytes;

    /// <summary>Creates the queue.</summary>
    /// <param name="maxDelay">Oldest a queued frame may get (about one GOP).</param>
    /// <param name="maxBytes">Most payload bytes queued across all cameras.</param>
    /// <param name="time">Clock.</param>
    /// <param name="meter">Where the per-camera counters are published.</param>
    public UplinkSendQueue(TimeSpan maxDelay, long maxBytes, TimeProvider time, Meter meter)
    {
        MaxDelay = maxDelay;
        MaxBytes = maxBytes;
        _time = time;
        _droppedFrames = ObservedSeries.Counter(meter, "pinhole_uplink_dropped_frames_total", "Frames dropped before sending because the uplink was too slow or down.");
        _droppedBytes = ObservedSeries.Counter(meter, "pinhole_uplink_dropped_bytes_total", "Payload bytes of dropped frames.");
        _sentFrames = ObservedSeries.Counter(meter, "pinhole_uplink_camera_frames_sent_total", "Access units sent over the uplink, per camera.");
    }

    /// <summary>Oldest a queued frame may get.</summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>Most payload bytes queued.</summary>
    public long MaxBytes { get; }

    /// <summary>Payload bytes queued now.</summary>
    public long QueuedBytes { get { lock (_lock) return _bytes; } }

    /// <summary>Whether any camera has a frame waiting.</summary>
    public bool HasFrames
    {
        get
        {
            lock (_lock)
                foreach (var c in _cameras)
                    if (c.Items.Count > 0) return true;
            return false;
        }
    }

    /// <summary>Adds a camera; its stream id is its position (stable for the life of the process).</summary>
    public CameraQueue AddCamera(string name)
    {
        lock (_lock)
        {
            var existing = _cameras.Find(c => c.Name == name);
            if (existing is not null) return existing;
            if (_cameras.Count > ushort.MaxValue) throw new InvalidOperationException("too many cameras");
            var camera = new CameraQueue(name, (ushort)_cameras.Count);
            _droppedFrames.Set(() => camera.DroppedFrames, ("camera", name));
            _droppedBytes.Set(() => camera.DroppedBytes, ("camera", name));
            _sentFrames.Set(() => camera.SentFrames, ("camera", name));
            _cameras.Add(camera);
            return camera;
        }
    }

    /// <summary>Every camera added so far.</summary>
    public IReadOnlyList<CameraQueue> Cameras { get { lock (_lock) return [.. _cameras]; } }

    /// <summary>The camera's tracks changed; following frames carry them.</summary>
    public void SetTracks(CameraQueue camera, IReadOnlyList<TrackInfo> tracks)
    {
        ArgumentNullException.ThrowIfNull(camera);
        ArgumentNullException.ThrowIfNull(tracks);
        lock (_lock)
        {
            camera.Tracks = tracks;
            camera.VideoTrack = -1;
            for (var i = 0; i < tracks.Count; i++)
                if (tracks[i].IsVideo) { camera.VideoTrack = i; break; }
        }
    }

    /// <summary>Queues one frame, or drops it (and what is queued before it) when the camera is over its bound, and wakes the sender.</summary>
    public void Enqueue(CameraQueue camera, in AccessUnit unit)
    {
        if (EnqueueQuietly(camera, unit)) Pulse();
    }

    /// <summary>
    /// As <see cref="Enqueue"/> without waking the sender: for a producer that then tries to send
    /// itself and pulses only when it cannot. Returns true when the frame was queued.
    /// </summary>
    public bool EnqueueQuietly(CameraQueue camera, in AccessUnit unit)
    {
        ArgumentNullException.ThrowIfNull(camera);
        lock (_lock)
        {
            var tracks = camera.Tracks;
            if (tracks is null || (uint)unit.Track >= (uint)tracks.Count)
            {
                // A source that sends frames before (or outside) its tracks: nothing could decode them.
                camera.Drop(unit.Data.Length);
                return false;
            }
            var gopStart = camera.IsGopStart(unit);
            var now = _time.GetTimestamp();
            while (camera.Items.Count > 0 && (Age(camera.Items.Peek(), now) > MaxDelay || _bytes + unit.Data.Length > MaxBytes))
                DropToNextGop(camera);
            if (camera.Skipping)
            {
                if (!gopStart) { camera.Drop(unit.Data.Length); return false; }
                camera.Skipping = false;
            }
            if (_bytes + unit.Data.Length > MaxBytes)
            {
                // Other cameras fill the byte cap; this one restarts at its next keyframe.
                camera.Drop(unit.Data.Length);
                camera.Skipping = true;
                return false;
            }
            camera.Items.Enqueue(new QueuedFrame(camera, unit, tracks, now, ++_order));
            _bytes += unit.Data.Length;
        }
        return true;
    }

    /// <summary>
    /// Delay a frame may reach at the relay on a link that is the bottleneck (default: no target,
    /// only <see cref="MaxDelay"/>). See <see cref="TryDequeue(out QueuedFrame, long, double)"/>.
    /// </summary>
    public TimeSpan TargetDelay { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// Transfer times below this do not count as a bottleneck: on a fast link, a frame's delay is its
    /// age, and only <see cref="MaxDelay"/> drops (so a busy CPU does not drop frames a fast link would carry).
    /// </summary>
    public static readonly TimeSpan MinPredictedTransfer = TimeSpan.FromMilliseconds(100);

    /// <summary>Takes the oldest frame across cameras that is still young enough to send.</summary>
    public bool TryDequeue(out QueuedFrame frame) => TryDequeue(out frame, 0, 0);

    /// <summary>
    /// Takes the oldest frame across cameras that is still young enough to send and, on a slow link,
    /// can still arrive in time: when <paramref name="bytesPerSecond"/> (the link's measured delivery
    /// rate) is known, a frame that would reach the relay later than <see cref="TargetDelay"/> (its age,
    /// plus <paramref name="bytesAhead"/> still unacknowledged and its own bytes at that rate) is dropped
    /// with the rest of its GOP. That holds for keyframes too, and is the per-GOP decision: a GOP whose
    /// keyframe would arrive late is skipped whole, so the link keeps carrying the GOP it is in (whose
    /// frames cost no new keyframe) instead of spending a keyframe's bytes on a GOP that could show only
    /// its first frames. On a link half the stream's rate this sends whole GOPs with one skipped between
    /// them rather than the head of every GOP. A keyframe too big to arrive in time even on an empty
    /// link is still sent when it has not waited (it is the only way to show anything).
    /// </summary>
    public bool TryDequeue(out QueuedFrame frame, long bytesAhead, double bytesPerSecond)
    {
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            while (true)
            {
                CameraQueue? oldest = null;
                foreach (var c in _cameras)
                    if (c.Items.Count > 0 && (oldest is null || c.Items.Peek().Order < oldest.Items.Peek().Order)) oldest = c;
                if (oldest is null) { frame = default; return false; }

                var head = oldest.Items.Peek();
                if (Age(head, now) > MaxDelay || (bytesPerSecond > 0 && TooLate(head, now, bytesAhead, bytesPerSecond)))
                {
                    DropToNextGop(oldest);
                    continue;
                }
                oldest.Items.Dequeue();
                _bytes -= head.Unit.Data.Length;
                if (oldest.NeedKeyframe)
                {
                    // A new connection: the relay must see this camera start at a keyframe.
                    if (!oldest.IsGopStart(head.Unit)) { oldest.Drop(head.Unit.Data.Length); continue; }
                    oldest.NeedKeyframe = false;
                }
                frame = head;
                return true;
            }
        }
    }

    /// <summary>The camera's source stopped: once its queued frames are sent, the relay is told (<c>StreamEnd</c>).</summary>
    public void EndStream(CameraQueue camera)
    {
        ArgumentNullException.ThrowIfNull(camera);
        lock (_lock)
        {
            // The end lies after every frame queued so far. A source that restarts before they are
            // sent must not cancel it: its new session starts a new clock, and the relay re-anchors
            // viewers' timelines on StreamEnd (before, a quick restart lost it and RTP time jumped back).
            camera.EndRequested = true;
            camera.EndAfterOrder = _order;
        }
        Pulse();
    }

    /// <summary>Takes a camera whose source stopped and whose frames from before that are all sent (or
    /// dropped), clearing its end request. Frames of a restarted source may wait behind it.</summary>
    public bool TryTakeEnded(out CameraQueue? camera)
    {
        lock (_lock)
        {
            camera = _cameras.Find(c => c.EndRequested && (c.Items.Count == 0 || c.Items.Peek().Order > c.EndAfterOrder));
            if (camera is null) return false;
            camera.EndRequested = false;
            return true;
        }
    }

    /// <summary>A new connection starts: every camera's first frame on it must be a keyframe.</summary>
    public void ResetForNewConnection()
    {
        lock (_lock)
            foreach (var c in _cameras) c.NeedKeyframe = true;
    }

    /// <summary>Wakes a waiting <see cref="Wait"/>; pulses coalesce while nobody waits.</summary>
    public void Pulse() => _pulse.Set();

    /// <summary>
    /// Blocks until something was queued or <see cref="Pulse"/> was called (at once when a pulse is
    /// pending), then clears the pulse: the caller must look at everything again before waiting anew.
    /// One waiter at a time.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public void Wait(CancellationToken cancellationToken)
    {
        _pulse.Wait(cancellationToken);
        _pulse.Reset();
    }

    /// <summary>As <see cref="Wait(CancellationToken)"/>, but returns after <paramref name="timeout"/> at the latest.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public void Wait(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_pulse.Wait(timeout, cancellationToken)) _pulse.Reset();
    }

    private TimeSpan Age(in QueuedFrame f, long now) => _time.GetElapsedTime(f.EnqueuedAt, now);

    private bool TooLate(in QueuedFrame f, long now, long bytesAhead, double bytesPerSecond)
    {
        if (TargetDelay == Timeout.InfiniteTimeSpan) return false;
        var own = TimeSpan.FromSeconds(f.Unit.Data.Length / bytesPerSecond);
        var wait = TimeSpan.FromSeconds(Math.Max(0, bytesAhead) / bytesPerSecond);
        if (wait + own < MinPredictedTransfer) return false;
        var waited = Age(f, now) + wait;
        if (waited + own <= TargetDelay) return false;
        // Late. A GOP start is dropped only for waiting, never for its own size: one that could not
        // arrive in time even on an idle link goes out as soon as it has not waited.
        return !f.Camera.IsGopStart(f.Unit) || waited > MinPredictedTransfer;
    }

    // Drops the camera's queued frames up to (not including) its next queued GOP start after the
    // head; with none queued, drops them all and skips incoming frames until the next keyframe.
    private void DropToNextGop(CameraQueue camera)
    {
        var next = -1;
        var i = 0;
        foreach (var f in camera.Items)
        {
            if (i > 0 && camera.IsGopStart(f.Unit)) { next = i; break; }
            i++;
        }
        var count = next < 0 ? camera.Items.Count : next;
        for (var k = 0; k < count; k++)
        {
            var f = camera.Items.Dequeue();
            _bytes -= f.Unit.Data.Length;
            camera.Drop(f.Unit.Data.Length);
        }
        if (next < 0) camera.Skipping = true;
    }
}

/// <summary>One frame waiting to be sent.</summary>
/// <param name="Camera">Its camera.</param>
/// <param name="Unit">The frame.</param>
/// <param name="Tracks">The camera's tracks when the frame was produced (announced before it when they changed).</param>
/// <param name="EnqueuedAt">When it was queued (<see cref="TimeProvider.GetTimestamp"/>).</param>
/// <param name="Order">Arrival order across cameras.</param>
public readonly record struct QueuedFrame(CameraQueue Camera, AccessUnit Unit, IReadOnlyList<TrackInfo> Tracks, long EnqueuedAt, long Order);

/// <summary>One camera's part of the send queue and its counters. Mutated only under the queue's lock.</summary>
public sealed class CameraQueue
{
    private long _droppedFrames, _droppedBytes, _sentFrames;

    internal CameraQueue(string name, ushort streamId)
    {
        Name = name;
        StreamId = streamId;
    }

    /// <summary>The camera's name.</summary>
    public string Name { get; }

    /// <summary>The stream id used on the wire.</summary>
    public ushort StreamId { get; }

    /// <summary>Frames dropped since start.</summary>
    public long DroppedFrames => Interlocked.Read(ref _droppedFrames);

    /// <summary>Payload bytes dropped since start.</summary>
    public long DroppedBytes => Interlocked.Read(ref _droppedBytes);

    /// <summary>Frames of this camera sent (counted by the client).</summary>
    public long SentFrames => Interlocked.Read(ref _sentFrames);

    internal Queue<QueuedFrame> Items { get; } = new();
    internal IReadOnlyList<TrackInfo>? Tracks { get; set; }
    internal int VideoTrack { get; set; } = -1;
    internal bool Skipping { get; set; }
    internal bool NeedKeyframe { get; set; } = true;
    internal bool EndRequested { get; set; }
    // The arrival order of the last frame queued before the end was requested.
    internal long EndAfterOrder { get; set; }

    internal bool IsGopStart(in AccessUnit unit) => unit.IsKeyframe && (VideoTrack < 0 || unit.Track == VideoTrack);

    internal void Drop(int bytes)
    {
        Interlocked.Increment(ref _droppedFrames);
        Interlocked.Add(ref _droppedBytes, bytes);
    }

    internal void CountSent() => Interlocked.Increment(ref _sentFrames);
}
