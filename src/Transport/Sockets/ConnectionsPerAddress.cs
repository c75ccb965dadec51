using System.Collections.Concurrent;
using System.Net;

namespace Pinhole.Transport.Sockets;

/// <summary>
/// Counts the open connections of each client address against a cap, so one client (a flood, a
/// slowloris) cannot take every slot of a server. Thread-safe; an address with no connection left
/// is forgotten, so memory follows the connections actually open. IPv4-mapped IPv6 addresses count as
/// their IPv4 address (a dual-stack socket sees the same client either way).
/// </summary>
public sealed class ConnectionsPerAddress
{
    private readonly ConcurrentDictionary<IPAddress, int> _open = new();

    /// <summary>Creates a counter allowing <paramref name="max"/> connections per address.</summary>
    public ConnectionsPerAddress(int max)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        Max = max;
    }

    /// <summary>The cap per address.</summary>
    public int Max { get; }

    /// <summary>Counts a new connection from <paramref name="address"/>; false (and nothing counted)
    /// when the address already holds <see cref="Max"/>. Every true must be paired with <see cref="Leave"/>.</summary>
    public bool TryEnter(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        address = Normalize(address);
        if (_open.AddOrUpdate(address, 1, (_, n) => n + 1) <= Max) return true;
        Leave(address);
        return false;
    }

    /// <summary>Counts a connection from <paramref name="address"/> as closed.</summary>
    public void Leave(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        address = Normalize(address);
        while (_open.TryGetValue(address, out var n))
            if (n <= 1 ? _open.TryRemove(new KeyValuePair<IPAddress, int>(address, n)) : _open.TryUpdate(address, n - 1, n)) return;
    }

    /// <summary>Open connections from <paramref name="address"/> now.</summary>
    public int Count(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return _open.TryGetValue(Normalize(address), out var n) ? n : 0;
    }

    private static IPAddress Normalize(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;
}
