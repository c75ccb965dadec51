using System.Collections.Concurrent;

namespace Pinhole.Streaming;

/// <summary>
/// All camera streams on this relay, keyed by device and camera name, and the limits that span streams:
/// viewers in total and per user, cameras per device, the memory of all GOP caches together, and how long
/// a departed device's streams are kept.
/// </summary>
public sealed class MediaStreamRegistry
{
    private readonly ConcurrentDictionary<(string Device, string Camera), MediaStream> _streams = new();
    private readonly ConcurrentDictionary<string, int> _viewersPerUser = new(StringComparer.Ordinal);
    private readonly Lock _viewerLock = new();
    private readonly Lock _addLock = new();
    private int _viewers;
    private long _gopBytes;

    /// <summary>Creates the registry.</summary>
    /// <param name="limits">Per-stream limits.</param>
    /// <param name="maxViewersTotal">Most viewers across the whole relay.</param>
    /// <param name="time">Clock for the departed-device grace period; the system clock when null.</param>
    public MediaStreamRegistry(MediaStreamLimits? limits = null, int maxViewersTotal = 256, TimeProvider? time = null)
    {
        Limits = limits ?? new MediaStreamLimits();
        MaxViewersTotal = maxViewersTotal;
        Time = time ?? TimeProvider.System;
    }

    /// <summary>Per-stream limits.</summary>
    public MediaStreamLimits Limits { get; }

    /// <summary>Most viewers across the relay.</summary>
    public int MaxViewersTotal { get; }

    internal TimeProvider Time { get; }

    /// <summary>Viewers across the relay now.</summary>
    public int TotalViewers => Volatile.Read(ref _viewers);

    /// <summary>Bytes all GOP caches hold now (at most <see cref="MediaStreamLimits.GopCacheMemory"/>).</summary>
    public long GopCacheBytes => Interlocked.Read(ref _gopBytes);

    /// <summary>Streams known now.</summary>
    public int Count => _streams.Count;

    /// <summary>The stream for a camera, created (offline, no tracks) on first use by the uplink.</summary>
    public MediaStream GetOrAdd(string deviceId, string camera) =>
        _streams.GetOrAdd((deviceId, camera), k => new MediaStream(k.Device, k.Camera, Limits, this));

    /// <summary>
    /// The stream for a camera of a device, created when the device has fewer than
    /// <see cref="MediaStreamLimits.MaxCamerasPerDevice"/> cameras; false when it would be one too many.
    /// </summary>
    public bool TryGetOrAdd(string deviceId, string camera, out MediaStream stream)
    {
        if (_streams.TryGetValue((deviceId, camera), out stream!)) return true;
        lock (_addLock)
        {
            if (_streams.TryGetValue((deviceId, camera), out stream!)) return true;
            if (CamerasOf(deviceId) >= Limits.MaxCamerasPerDevice) return false;
            stream = GetOrAdd(deviceId, camera);
            return true;
        }
    }

    /// <summary>Cameras a device has on the relay (online or within their grace period).</summary>
    public int CamerasOf(string deviceId) => _streams.Keys.Count(k => k.Device == deviceId);

    /// <summary>The stream for a camera if the device ever announced it.</summary>
    public bool TryGet(string deviceId, string camera, out MediaStream stream) =>
        _streams.TryGetValue((deviceId, camera), out stream!);

    /// <summary>Every known stream, ordered by device then camera.</summary>
    public IReadOnlyList<MediaStream> All =>
        [.. _streams.Values.OrderBy(s => s.DeviceId, StringComparer.Ordinal).ThenBy(s => s.Camera, StringComparer.Ordinal)];

    /// <summary>Marks every stream of a device offline (its uplink ended); they are forgotten after
    /// <see cref="MediaStreamLimits.DepartedStreamGrace"/> unless the device returns or viewers still wait on them.</summary>
    public void SetDeviceOffline(string deviceId)
    {
        foreach (var s in _streams.Values)
            if (s.DeviceId == deviceId) s.SetOffline();
        ITimer? timer = null;
        timer = Time.CreateTimer(_ =>
        {
            timer?.Dispose();
            ForgetDeparted();
        }, null, Limits.DepartedStreamGrace, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Forgets streams whose device has been gone for the grace period and that nobody watches.</summary>
    public int ForgetDeparted()
    {
        var forgotten = 0;
        foreach (var (key, s) in _streams)
        {
            if (s.IsOnline || s.ViewerCount > 0 || s.OfflineSince is not { } since || Time.GetElapsedTime(since) < Limits.DepartedStreamGrace) continue;
            if (_streams.TryRemove(new KeyValuePair<(string, string), MediaStream>(key, s))) forgotten++;
        }
        return forgotten;
    }

    internal bool TryAdmitViewer(string? user)
    {
        lock (_viewerLock)
        {
            if (_viewers >= MaxViewersTotal) return false;
            if (user is not null)
            {
                var n = _viewersPerUser.GetValueOrDefault(user);
                if (n >= Limits.MaxViewersPerUser) return false;
                _viewersPerUser[user] = n + 1;
            }
            _viewers++;
            return true;
        }
    }

    internal void ReleaseViewer(string? user)
    {
        lock (_viewerLock)
        {
            _viewers--;
            if (user is null || !_viewersPerUser.TryGetValue(user, out var n)) return;
            if (n <= 1) _viewersPerUser.TryRemove(user, out _);
            else _viewersPerUser[user] = n - 1;
        }
    }

    /// <summary>Viewers <paramref name="user"/> has now.</summary>
    public int ViewersOf(string user) => _viewersPerUser.GetValueOrDefault(user);

    internal bool TryReserveGopBytes(long bytes)
    {
        while (true)
        {
            var current = Interlocked.Read(ref _gopBytes);
            if (current + bytes > Limits.GopCacheMemory) return false;
            if (Interlocked.CompareExchange(ref _gopBytes, current + bytes, current) == current) return true;
        }
    }

    internal void ReleaseGopBytes(long bytes) => Interlocked.Add(ref _gopBytes, -bytes);
}
