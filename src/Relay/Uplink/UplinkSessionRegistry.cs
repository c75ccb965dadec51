using System.Collections.Concurrent;

namespace Pinhole.Relay.Uplink;

/// <summary>The live uplink of each device: at most one; a new one replaces the old.</summary>
public sealed class UplinkSessionRegistry
{
    private readonly ConcurrentDictionary<string, RelayUplinkSession> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Device, string Camera), ulong> _reportedDrops = new();

    /// <summary>Devices with a live uplink now.</summary>
    public int Count => _sessions.Count;

    /// <summary>Devices whose live uplink uses <paramref name="transport"/>.</summary>
    public int CountOver(Pinhole.Transport.Uplink.UplinkTransport transport) => _sessions.Values.Count(s => s.Transport == transport);

    /// <summary>True when the device has a live uplink.</summary>
    public bool IsConnected(string deviceId) => _sessions.ContainsKey(deviceId);

    /// <summary>The device's live uplink, if it has one.</summary>
    public bool TryGet(string deviceId, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out RelayUplinkSession session) =>
        _sessions.TryGetValue(deviceId, out session);

    /// <summary>Ids of the connected devices, ordered.</summary>
    public IReadOnlyList<string> ConnectedDevices => [.. _sessions.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Makes <paramref name="session"/> the device's live uplink; returns the one it replaces, if any.</summary>
    internal RelayUplinkSession? Register(RelayUplinkSession session)
    {
        RelayUplinkSession? old = null;
        _sessions.AddOrUpdate(session.DeviceId, session, (_, existing) => { old = existing; return session; });
        return old;
    }

    /// <summary>Records a device's cumulative drop count for a camera and returns the previous one (0 if none).
    /// Kept across sessions, so a device that reconnects and repeats its totals is not counted twice.</summary>
    internal ulong ExchangeReportedDrops(string deviceId, string camera, ulong total)
    {
        ulong previous = 0;
        _reportedDrops.AddOrUpdate((deviceId, camera), total, (_, old) => { previous = old; return total; });
        return previous;
    }

    /// <summary>Removes <paramref name="session"/> if it is still the device's live uplink.</summary>
    /// <returns>True when it was (so the device is now offline); false when a newer uplink replaced it.</returns>
    internal bool Unregister(RelayUplinkSession session) =>
        _sessions.TryRemove(new KeyValuePair<string, RelayUplinkSession>(session.DeviceId, session));
}
