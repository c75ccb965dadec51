using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;

namespace Pinhole.Streaming;

/// <summary>
/// One viewer's bounded queue on a <see cref="MediaStream"/>. The stream writes without ever
/// blocking; when the queue holds more than <see cref="MediaStreamLimits.ViewerQueueDuration"/> of
/// video (or too many items), everything queued is dropped and the viewer resumes at the next video
/// keyframe, so it never sees a broken GOP and never slows the uplink or other viewers.
/// </summary>
public sealed class MediaSubscription : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Queue<MediaEvent> _queue = new();
    private readonly MediaStream _stream;
    private readonly long _maxVideoTicks;
    private readonly int _maxItems;
    private TaskCompletionSource? _waiter;
    private bool _waitingForKeyframe;
    private bool _disposed;
    private int _videoTrack = -1;
    private MediaCodec _videoCodec;
    private long _droppedFrames;

    internal MediaSubscription(MediaStream stream, MediaStreamLimits limits, string? viewer = null)
    {
        _stream = stream;
        Viewer = viewer;
        _maxVideoTicks = (long)(limits.ViewerQueueDuration.TotalSeconds * 90_000);
        _maxItems = limits.ViewerQueueMaxItems;
    }

    /// <summary>The user watching (counted against <see cref="MediaStreamLimits.MaxViewersPerUser"/>); null when anonymous.</summary>
    public string? Viewer { get; }

    /// <summary>The stream this subscription reads.</summary>
    public MediaStream Stream => _stream;

    /// <summary>Frames this viewer skipped because it fell behind.</summary>
    public long DroppedFrames => Interlocked.Read(ref _droppedFrames);

    /// <summary>Items waiting to be read.</summary>
    public int QueuedCount { get { lock (_lock) return _queue.Count; } }

    /// <summary>Takes the next event without waiting.</summary>
    public bool TryRead(out MediaEvent item)
    {
        lock (_lock)
        {
            return _queue.TryDequeue(out item);
        }
    }

    /// <summary>Waits for the next event. Throws <see cref="OperationCanceledException"/> on cancellation
    /// and <see cref="ObjectDisposedException"/> after <see cref="Dispose"/>.</summary>
    public async ValueTask<MediaEvent> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_queue.TryDequeue(out var item)) return item;
                _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _waiter.Task;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    internal void Write(in MediaEvent item)
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            if (_disposed) return;
            switch (item.Kind)
            {
                case MediaEventKind.Tracks:
                    _videoTrack = FindVideoTrack(item.Tracks!);
                    if (_videoTrack >= 0) _videoCodec = item.Tracks![_videoTrack].Codec;
                    // A new configuration starts a new decode; what is queued from the old one is useless.
                    DropQueued();
                    _waitingForKeyframe = false;
                    _queue.Enqueue(item);
                    break;
                case MediaEventKind.Offline:
                    DropQueued();
                    _queue.Enqueue(item);
                    break;
                case MediaEventKind.Restart:
                    // Frames queued before it still play; the viewer re-anchors its timeline after them.
                    _queue.Enqueue(item);
                    break;
                default:
                    if (!Admit(item.Unit)) return;
                    _queue.Enqueue(item);
                    break;
            }
            wake = _waiter;
            _waiter = null;
        }
        wake?.TrySetResult();
    }

    // Decides whether a frame may be queued, dropping to the next keyframe when the viewer is behind.
    private bool Admit(in AccessUnit unit)
    {
        var isVideo = unit.Track == _videoTrack;
        // Resume only at the start of a keyframe picture, never at a bottom half (see MediaStream).
        var isRandomAccess = _videoTrack < 0 ? unit.IsKeyframe : isVideo && unit.IsKeyframe && !AccessUnitBoundary.ContinuesPicture(_videoCodec, unit.Data.Span);
        if (_waitingForKeyframe)
        {
            if (!isRandomAccess)
            {
                Interlocked.Increment(ref _droppedFrames);
                return false;
            }
            _waitingForKeyframe = false;
        }
        if (_queue.Count >= _maxItems || (isVideo && QueuedVideoSpan(unit) > _maxVideoTicks))
        {
            DropQueued();
            if (!isRandomAccess)
            {
                _waitingForKeyframe = true;
                Interlocked.Increment(ref _droppedFrames);
                return false;
            }
        }
        return true;
    }

    private long QueuedVideoSpan(in AccessUnit newest)
    {
        // Timestamps from before a restart are on another clock: measure from the first frame after it.
        long? oldest = null;
        foreach (var queued in _queue)
        {
            if (queued.Kind == MediaEventKind.Restart) oldest = null;
            else if (oldest is null && queued.Kind == MediaEventKind.Frame && queued.Unit.Track == _videoTrack) oldest = queued.Unit.Dts;
        }
        return oldest is { } dts ? newest.Dts - dts : 0;
    }

    private void DropQueued()
    {
        // Keep control events (tracks, offline): a consumer must always see them.
        var keep = _queue.Where(e => e.Kind != MediaEventKind.Frame).ToArray();
        Interlocked.Add(ref _droppedFrames, _queue.Count - keep.Length);
        _queue.Clear();
        // Only the newest Tracks event matters.
        var lastTracks = Array.FindLastIndex(keep, e => e.Kind == MediaEventKind.Tracks);
        for (var i = 0; i < keep.Length; i++)
        {
            if (keep[i].Kind == MediaEventKind.Tracks && i != lastTracks) continue;
            _queue.Enqueue(keep[i]);
        }
    }

    private static int FindVideoTrack(IReadOnlyList<TrackInfo> tracks)
    {
        for (var i = 0; i < tracks.Count; i++)
            if (tracks[i].IsVideo) return i;
        return -1;
    }

    /// <summary>Leaves the stream. Pending reads end with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _queue.Clear();
            wake = _waiter;
            _waiter = null;
        }
        wake?.TrySetResult();
        _stream.Unsubscribe(this);
    }
}
