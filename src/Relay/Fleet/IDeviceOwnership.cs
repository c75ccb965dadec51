namespace Pinhole.Relay.Fleet;

/// <summary>Who this relay is to the others: its id and the addresses viewers are sent to (relay.json <c>"publicUrl"</c>, <c>"publicRtsp"</c>).</summary>
/// <param name="Id">Unique per running relay process.</param>
/// <param name="PublicUrl">Base http(s) URL viewers should use for this relay, or null.</param>
/// <param name="PublicRtsp">HOST:PORT viewers' RTSP clients should use for this relay, or null.</param>
public sealed record RelayIdentity(string Id, string? PublicUrl, string? PublicRtsp);

/// <summary>The relay holding a device's uplink, as recorded in the shared database.</summary>
public sealed record DeviceOwner(string Device, string RelayId, string? PublicUrl, string? PublicRtsp, DateTimeOffset LeaseUntil);

/// <summary>
/// Which relay holds each device's uplink (docs/scale-out.md). The holder claims the device when the uplink
/// opens, renews a lease while it holds it, and releases it when the uplink ends; a relay that dies stops
/// renewing, so its claims lapse by themselves. Only a shared database (PostgreSQL) has one.
/// </summary>
public interface IDeviceOwnership
{
    /// <summary>Records <paramref name="relay"/> as the device's owner until <paramref name="leaseUntil"/>, taking it over from any other.</summary>
    void Claim(string device, RelayIdentity relay, DateTimeOffset leaseUntil);

    /// <summary>Extends the leases of those of <paramref name="devices"/> that <paramref name="relayId"/> still owns; returns how many.</summary>
    int Renew(string relayId, IReadOnlyCollection<string> devices, DateTimeOffset leaseUntil);

    /// <summary>Drops the device's ownership if <paramref name="relayId"/> still holds it.</summary>
    void Release(string device, string relayId);

    /// <summary>The device's owner whose lease runs past <paramref name="now"/>, or null.</summary>
    DeviceOwner? GetOwner(string device, DateTimeOffset now);

    /// <summary>Every device's owner whose lease runs past <paramref name="now"/> (one query, for the device list).</summary>
    IReadOnlyList<DeviceOwner> ListOwners(DateTimeOffset now);
}
