using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;

namespace Pinhole.Streaming;

/// <summary>Bounds for the hub, from config or defaults.</summary>
public sealed record MediaStreamLimits
{
    /// <summary>Most video a viewer may have queued before it skips to the next keyframe.</summary>
    public TimeSpan ViewerQueueDuration { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most items a viewer may have queued (guards audio-only and broken timestamps).</summary>
    public int ViewerQueueMaxItems { get; init; } = 512;

    /// <summary>Most viewers on one stream.</summary>
    public int MaxViewersPerStream { get; init; } = 32;

    /// <summary>Largest cached GOP, in access units; a longer GOP is not cached (new viewers wait for the next keyframe).</summary>
    public int MaxGopFrames { get; init; } = 600;

    /// <summary>Largest cached GOP, in bytes.</summary>
    public long MaxGopBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Most viewers one user may have at once, across every stream and protocol.</summary>
    public int MaxViewersPerUser { get; init; } = 16;

    /// <summary>Most cameras one device may have on the relay.</summary>
    public int MaxCamerasPerDevice { get; init; } = 32;

    /// <summary>Bytes all streams' GOP caches may hold together; a GOP that does not fit is not cached.</summary>
    public long GopCacheMemory { get; init; } = 256L * 1024 * 1024;

    /// <summary>A stream whose device left is forgotten after this long without the device and without viewers.</summary>
    public TimeSpan DepartedStreamGrace { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// One camera of one device on the relay: the single place its frames arrive (from the uplink) and
/// the fan-out to every viewer (RTSP, browser). Keeps the tracks and the latest GOP so a new viewer
/// starts at once. Writing never blocks: each viewer has its own bounded queue.
/// </summary>
public sealed class MediaStream : IMediaSink
{
    private readonly Lock _lock = new();
    private readonly List<AccessUnit> _gop = [];
    private readonly MediaStreamLimits _limits;
    private readonly MediaStreamRegistry? _registry;
    private MediaSubscription[] _subscribers = [];
    private IReadOnlyList<TrackInfo>? _tracks;
    private long _gopBytes;
    private bool _gopValid;
    private int _videoTrack = -1;
    private long _framesIn, _bytesIn;
    private readonly long[] _bytesPerSecond = new long[4];
    private long _currentSecond;

    internal MediaStream(string deviceId, string camera, MediaStreamLimits limits, MediaStreamRegistry? registry)
    {
        DeviceId = deviceId;
        Camera = camera;
        _limits = limits;
        _registry = registry;
    }

    /// <summary>Bytes this stream's GOP cache holds now.</summary>
    public long GopBytes { get { lock (_lock) return _gopBytes; } }

    /// <summary>When the device last left (the registry forgets the stream after a grace period); null while online.</summary>
    internal long? OfflineSince { get; private set; }

    /// <summary>The device this camera belongs to.</summary>
    public string DeviceId { get; }

    /// <summary>The camera's name on that device.</summary>
    public string Camera { get; }

    /// <summary>True while the device's uplink is delivering this stream.</summary>
    public bool IsOnline { get; private set; }

    /// <summary>The current tracks, or null before the device described them.</summary>
    public IReadOnlyList<TrackInfo>? Tracks { get { lock (_lock) return _tracks; } }

    /// <summary>Access units received.</summary>
    public long FramesIn => Interlocked.Read(ref _framesIn);

    /// <summary>Payload bytes received.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);

    /// <summary>Viewers now.</summary>
    public int ViewerCount => Volatile.Read(ref _subscribers).Length;

    /// <summary>Frames dropped across all current viewers because they fell behind.</summary>
    public long ViewerDrops => Volatile.Read(ref _subscribers).Sum(s => s.DroppedFrames);

    /// <summary>Incoming bitrate in bits per second, averaged over the last few whole seconds.</summary>
    public long BitsPerSecond
    {
        get
        {
            lock (_lock)
            {
                var now = Environment.TickCount64 / 1000;
                // The three whole seconds before this one; slots outside what CountBytes kept are stale.
                long sum = 0;
                for (var s = now - 3; s < now; s++)
                {
                    if (s >= _currentSecond - 3 && s <= _currentSecond) sum += _bytesPerSecond[s & 3];
                }
                return sum * 8 / 3;
            }
        }
    }

    /// <summary>
    /// Adds a viewer. It first receives the tracks and the cached GOP (when there is one), then live
    /// frames. Returns null when the viewer limit for this stream or the relay is reached.
    /// </summary>
    public MediaSubscription? Subscribe() => Subscribe(null);

    /// <summary>Adds a viewer on behalf of <paramref name="user"/>, who may hold at most
    /// <see cref="MediaStreamLimits.MaxViewersPerUser"/> viewers at once; null when a limit is reached.</summary>
    public MediaSubscription? Subscribe(string? user)
    {
        lock (_lock)
        {
            if (_subscribers.Length >= _limits.MaxViewersPerStream) return null;
            if (_registry is not null && !_registry.TryAdmitViewer(user)) return null;
            var sub = new MediaSubscription(this, _limits, user);
            if (!IsOnline) sub.Write(MediaEvent.OfflineEvent);
            if (_tracks is not null)
            {
                sub.Write(MediaEvent.ForTracks(_tracks));
                if (_gopValid)
                    foreach (var unit in _gop) sub.Write(MediaEvent.ForFrame(unit));
            }
            _subscribers = [.. _subscribers, sub];
            return sub;
        }
    }

    internal void Unsubscribe(MediaSubscription sub)
    {
        lock (_lock)
        {
            var before = _subscribers.Length;
            _subscribers = [.. _subscribers.Where(s => s != sub)];
            if (_subscribers.Length == before) return;
        }
        _registry?.ReleaseViewer(sub.Viewer);
    }

    /// <summary>
    /// The device (re)announced the stream. New tracks re-initialise viewers; the same tracks again
    /// mean the device's source restarted (a camera reconnected), whose timestamps may start from a
    /// new origin: viewers are told (<see cref="MediaEventKind.Restart"/>) so they carry their own
    /// timeline on, and the cached GOP is dropped so a new viewer never gets frames from before the
    /// restart followed by frames from after it.
    /// </summary>
    public void OnTracks(IReadOnlyList<TrackInfo> tracks)
    {
        MediaSubscription[] subs;
        MediaEvent evt;
        lock (_lock)
        {
            IsOnline = true;
            OfflineSince = null;
            if (_tracks is not null && _tracks.SequenceEqual(tracks))
            {
                evt = MediaEvent.RestartEvent;
            }
            else
            {
                _tracks = tracks;
                _videoTrack = -1;
                for (var i = 0; i < tracks.Count; i++)
                    if (tracks[i].IsVideo) { _videoTrack = i; break; }
                evt = MediaEvent.ForTracks(tracks);
            }
            ResetGop(valid: false);
            subs = _subscribers;
        }
        foreach (var s in subs) s.Write(evt);
    }

    /// <inheritdoc />
    public void OnAccessUnit(in AccessUnit unit)
    {
        MediaSubscription[] subs;
        lock (_lock)
        {
            if (_tracks is null || (uint)unit.Track >= (uint)_tracks.Count) return;
            IsOnline = true;
            Interlocked.Increment(ref _framesIn);
            Interlocked.Add(ref _bytesIn, unit.Data.Length);
            CountBytes(unit.Data.Length);
            CacheInGop(unit);
            subs = _subscribers;
        }
        var evt = MediaEvent.ForFrame(unit);
        foreach (var s in subs) s.Write(evt);
    }

    /// <summary>The device's uplink ended. Viewers are told; the tracks are kept so a returning device with
    /// the same configuration resumes without re-initialising players.</summary>
    public void SetOffline()
    {
        MediaSubscription[] subs;
        lock (_lock)
        {
            if (!IsOnline) return;
            IsOnline = false;
            OfflineSince = _registry?.Time.GetTimestamp() ?? 0;
            ResetGop(valid: false);
            subs = _subscribers;
        }
        foreach (var s in subs) s.Write(MediaEvent.OfflineEvent);
    }

    private void CacheInGop(in AccessUnit unit)
    {
        // A keyframe that only continues a picture (the bottom half an older edge cut off at a
        // marker bit) is no place to start: the GOP must begin with the whole picture.
        var startsGop = _videoTrack < 0
            ? unit.IsKeyframe
            : unit.Track == _videoTrack && unit.IsKeyframe && !AccessUnitBoundary.ContinuesPicture(_tracks![_videoTrack].Codec, unit.Data.Span);
        if (startsGop) ResetGop(valid: true);
        if (!_gopValid) return;
        if (_gop.Count >= _limits.MaxGopFrames || _gopBytes + unit.Data.Length > _limits.MaxGopBytes
            || (_registry is not null && !_registry.TryReserveGopBytes(unit.Data.Length)))
        {
            // Too long to cache; new viewers wait for the next keyframe instead.
            ResetGop(valid: false);
            return;
        }
        _gop.Add(unit);
        _gopBytes += unit.Data.Length;
        if (_videoTrack < 0 && _gop.Count > 50) ResetGop(valid: false); // audio only: nothing to cache beyond a moment
    }

    private void ResetGop(bool valid)
    {
        _gop.Clear();
        if (_gopBytes > 0) _registry?.ReleaseGopBytes(_gopBytes);
        _gopBytes = 0;
        _gopValid = valid;
    }

    private void CountBytes(int bytes)
    {
        var second = Environment.TickCount64 / 1000;
        if (second != _currentSecond)
        {
            for (var s = Math.Max(_currentSecond + 1, second - 3); s <= second; s++) _bytesPerSecond[s & 3] = 0;
            _currentSecond = second;
        }
        _bytesPerSecond[second & 3] += bytes;
    }
}
