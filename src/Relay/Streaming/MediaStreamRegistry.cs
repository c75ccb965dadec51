using System.Collections.Concurrent;

namespace Pinhole.Relay.Streaming;

/// <summary>All camera streams on this relay, keyed by device and camera name.</summary>
public sealed class MediaStreamRegistry
{
    private readonly ConcurrentDictionary<(string Device, string Camera), MediaStream> _streams = new();

    /// <summary>Creates the registry.</summary>
    /// <param name="limits">Per-stream limits.</param>
    /// <param name="maxViewersTotal">Most viewers across the whole relay.</param>
    public MediaStreamRegistry(MediaStreamLimits? limits = null, int maxViewersTotal = 256)
    {
        Limits = limits ?? new MediaStreamLimits();
        MaxViewersTotal = maxViewersTotal;
    }

    /// <summary>Per-stream limits.</summary>
    public MediaStreamLimits Limits { get; }

    /// <summary>Most viewers across the relay.</summary>
    public int MaxViewersTotal { get; }

    /// <summary>Viewers across the relay now.</summary>
    public int TotalViewers => _streams.Values.Sum(s => s.ViewerCount);

    /// <summary>The stream for a camera, created (offline, no tracks) on first use by the uplink.</summary>
    public MediaStream GetOrAdd(string deviceId, string camera) =>
        _streams.GetOrAdd((deviceId, camera), k => new MediaStream(k.Device, k.Camera, Limits, () => TotalViewers < MaxViewersTotal));

    /// <summary>The stream for a camera if the device ever announced it.</summary>
    public bool TryGet(string deviceId, string camera, out MediaStream stream) =>
        _streams.TryGetValue((deviceId, camera), out stream!);

    /// <summary>Every known stream, ordered by device then camera.</summary>
    public IReadOnlyList<MediaStream> All =>
        [.. _streams.Values.OrderBy(s => s.DeviceId, StringComparer.Ordinal).ThenBy(s => s.Camera, StringComparer.Ordinal)];

    /// <summary>Marks every stream of a device offline (its uplink ended).</summary>
    public void SetDeviceOffline(string deviceId)
    {
        foreach (var s in _streams.Values)
            if (s.DeviceId == deviceId) s.SetOffline();
    }
}
