using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>A direction of traffic through the NAT router.</summary>
public enum NatDirection
{
    /// <summary>LAN to WAN: what the device sends out (shaped on the router's WAN interface).</summary>
    Upstream,

    /// <summary>WAN to LAN: what comes back to the device (shaped on the router's LAN interface).</summary>
    Downstream,
}

/// <summary>
/// Three network namespaces with unique names: a LAN host behind a NAT router, and a WAN host (the
/// "internet", where a relay runs). The router masquerades LAN traffic out of its WAN side and
/// drops new connections from the WAN into the LAN, as a home router does without port forwarding.
/// Only private addresses are used, and only inside these namespaces:
/// <code>
///  [lan]  eth0 192.168.50.20 --- lan0 192.168.50.1 [router] wan0 10.200.0.1 --- eth0 10.200.0.10 [wan]
/// </code>
/// Needs root. Dispose kills the processes started in the namespaces and deletes them.
/// </summary>
public sealed partial class NatTopology : IAsyncDisposable, IDisposable
{
    private static readonly Lazy<string?> LazySkipReason = new(ComputeSkipReason);
    private readonly List<PeerProcess> _processes = [];
    private readonly List<(string Namespace, string[] Rule)> _lossRules = [];
    private int _disposed;

    private NatTopology(string id)
    {
        Id = id;
        Lan = $"ph-{Environment.ProcessId}-{id}-lan";
        Router = $"ph-{Environment.ProcessId}-{id}-rtr";
        Wan = $"ph-{Environment.ProcessId}-{id}-wan";
    }

    /// <summary>Null when namespaces can be made here (root, ip, iptables, tc, sysctl working), otherwise the skip reason.</summary>
    public static string? SkipReason => LazySkipReason.Value;

    /// <summary>The random part of the namespace names.</summary>
    public string Id { get; }

    /// <summary>The LAN namespace (the edge device and LAN cameras run here).</summary>
    public string Lan { get; }

    /// <summary>The NAT router namespace.</summary>
    public string Router { get; }

    /// <summary>The WAN namespace (the relay and the broker run here).</summary>
    public string Wan { get; }

    /// <summary>The LAN host's address (interface eth0 in <see cref="Lan"/>).</summary>
    public IPAddress LanAddress { get; } = IPAddress.Parse("192.168.50.20");

    /// <summary>The router's LAN address, the LAN host's default gateway (interface lan0 in <see cref="Router"/>).</summary>
    public IPAddress RouterLanAddress { get; } = IPAddress.Parse("192.168.50.1");

    /// <summary>The router's WAN address: what WAN hosts see as the source of LAN traffic (interface wan0 in <see cref="Router"/>).</summary>
    public IPAddress RouterWanAddress { get; } = IPAddress.Parse("10.200.0.1");

    /// <summary>The WAN host's address (interface eth0 in <see cref="Wan"/>).</summary>
    public IPAddress WanAddress { get; } = IPAddress.Parse("10.200.0.10");

    /// <summary>The LAN subnet.</summary>
    public string LanSubnet => "192.168.50.0/24";

    /// <summary>Creates the namespaces, links, addresses, routes and NAT rules.</summary>
    public static async Task<NatTopology> CreateAsync(CancellationToken cancellationToken = default)
    {
        if (SkipReason is { } reason)
            throw new InvalidOperationException(reason);
        await RemoveStaleAsync(cancellationToken);
        var topology = new NatTopology(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3)));
        ExitCleanup.Register(topology, topology.Dispose);
        try
        {
            await topology.BuildAsync(cancellationToken);
            return topology;
        }
        catch
        {
            await topology.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs a command inside <paramref name="networkNamespace"/> to completion (see <see cref="Command.RunAsync(string, IEnumerable{string}, TimeSpan?, CancellationToken)"/>).</summary>
    public Task<CommandResult> ExecAsync(string networkNamespace, string program, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Command.RunInAsync(networkNamespace, program, arguments, timeout, cancellationToken);

    /// <summary>Runs a command inside <paramref name="networkNamespace"/> and throws with its output unless it exits with 0.</summary>
    public Task<CommandResult> ExecCheckedAsync(string networkNamespace, string program, params string[] arguments) =>
        Command.RunCheckedAsync("ip", ["netns", "exec", networkNamespace, Tools.Require(program), .. arguments]);

    /// <summary>
    /// Starts a peer inside <paramref name="networkNamespace"/> (e.g. <c>dotnet out/relay/pinhole-relay.dll</c>)
    /// without waiting for readiness. It is killed on Dispose at the latest.
    /// </summary>
    public PeerProcess StartIn(string networkNamespace, PeerStartInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        var peer = PeerProcess.Start(info with { NetworkNamespace = networkNamespace });
        lock (_processes)
            _processes.Add(peer);
        return peer;
    }

    /// <summary>
    /// Starts a peer inside <paramref name="networkNamespace"/> and waits until it is ready. A
    /// <see cref="PeerStartInfo.ReadyTcpPort"/> is probed from inside that namespace.
    /// </summary>
    public async Task<PeerProcess> StartInAsync(string networkNamespace, PeerStartInfo info, CancellationToken cancellationToken = default)
    {
        var peer = StartIn(networkNamespace, info);
        try
        {
            await peer.WaitUntilReadyAsync(cancellationToken);
            return peer;
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a thread of its own that has entered
    /// <paramref name="networkNamespace"/>. Sockets created there stay in that namespace for their
    /// whole life, whichever thread uses them later: create a TcpListener or a connected TcpClient
    /// here and use it from the test as usual.
    /// </summary>
    public Task<T> RunInAsync<T>(string networkNamespace, Func<T> action) => NetworkNamespace.RunInAsync(networkNamespace, action);

    /// <summary>Opens a TCP connection from inside <paramref name="networkNamespace"/>; throws <see cref="SocketException"/> or <see cref="TimeoutException"/> when it cannot.</summary>
    public Task<TcpClient> ConnectFromAsync(string networkNamespace, IPAddress address, int port, TimeSpan timeout) =>
        NetworkNamespace.ConnectFromAsync(networkNamespace, address, port, timeout);

    /// <summary>Starts a TCP listener inside <paramref name="networkNamespace"/> on <paramref name="address"/> (port 0 picks a free one).</summary>
    public Task<TcpListener> ListenInAsync(string networkNamespace, IPAddress address, int port = 0) =>
        RunInAsync(networkNamespace, () =>
        {
            var listener = new TcpListener(address, port);
            listener.Start();
            return listener;
        });

    /// <summary>
    /// Limits the bandwidth of one direction with a token bucket (<c>tc qdisc replace … tbf</c>) on
    /// the router's egress interface. Packets beyond the queue's <paramref name="latency"/> (200 ms
    /// unless given) are dropped, as on a real congested uplink.
    /// </summary>
    public async Task LimitBandwidthAsync(NatDirection direction, int kbitPerSecond, TimeSpan? latency = null, int? burstBytes = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kbitPerSecond);
        var device = EgressDevice(direction);
        var burst = burstBytes ?? Math.Max(4096, kbitPerSecond * 1000 / 8 / 25); // 40 ms worth, at least a few packets
        var ms = (int)(latency ?? TimeSpan.FromMilliseconds(200)).TotalMilliseconds;
        await ExecCheckedAsync(Router, "tc", "qdisc", "replace", "dev", device, "root", "tbf",
            "rate", $"{kbitPerSecond}kbit", "burst", burst.ToString(CultureInfo.InvariantCulture), "latency", $"{ms}ms");
    }

    /// <summary>Removes the bandwidth limit of one direction.</summary>
    public async Task ClearBandwidthLimitAsync(NatDirection direction)
    {
        var result = await ExecAsync(Router, "tc", ["qdisc", "del", "dev", EgressDevice(direction), "root"]);
        // "No such file or directory" / "Cannot delete qdisc with handle of zero" means no limit was set.
        if (!result.Succeeded && !result.StandardError.Contains("handle of zero", StringComparison.Ordinal) && !result.StandardError.Contains("No such file", StringComparison.Ordinal))
            throw new InvalidOperationException("cannot clear the bandwidth limit: " + result);
    }

    /// <summary>
    /// Drops <paramref name="percent"/> % of the packets forwarded in one direction, at random
    /// (<c>iptables -m statistic --mode random</c>); 100 cuts the link silently, as a dead mobile
    /// link does. Calls add up; <see cref="ClearPacketLossAsync"/> removes them all.
    /// </summary>
    public async Task DropPacketsAsync(NatDirection direction, double percent)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(percent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 100);
        var (input, output) = direction == NatDirection.Upstream ? ("lan0", "wan0") : ("wan0", "lan0");
        string[] rule = percent >= 100
            ? ["FORWARD", "-i", input, "-o", output, "-j", "DROP"]
            : ["FORWARD", "-i", input, "-o", output, "-m", "statistic", "--mode", "random",
               "--probability", (percent / 100).ToString("0.#####", CultureInfo.InvariantCulture), "-j", "DROP"];
        // Inserted first, ahead of the NAT firewall's accept rules.
        await ExecCheckedAsync(Router, "iptables", ["-I", .. rule[..1], "1", .. rule[1..]]);
        lock (_lossRules)
            _lossRules.Add((Router, rule));
    }

    /// <summary>Removes every packet-loss rule added by <see cref="DropPacketsAsync"/>.</summary>
    public async Task ClearPacketLossAsync()
    {
        List<(string Namespace, string[] Rule)> rules;
        lock (_lossRules)
        {
            rules = [.. _lossRules];
            _lossRules.Clear();
        }
        foreach (var (ns, rule) in rules)
            await ExecCheckedAsync(ns, "iptables", ["-D", .. rule]);
    }

    /// <summary>Kills the processes started in the namespaces and deletes the namespaces (and with them the links and rules).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        PeerProcess[] processes;
        lock (_processes)
            processes = [.. _processes];
        foreach (var p in processes)
            await p.DisposeAsync();
        foreach (var ns in new[] { Lan, Router, Wan })
            await DeleteNamespaceAsync(ns, CancellationToken.None);
        ExitCleanup.Unregister(this);
    }

    /// <summary>Synchronous <see cref="DisposeAsync"/>, also used when the test process exits.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override string ToString() => $"nat topology {Id}: {Lan} -> {Router} -> {Wan}";

    private string EgressDevice(NatDirection direction) => direction == NatDirection.Upstream ? "wan0" : "lan0";

    private async Task BuildAsync(CancellationToken ct)
    {
        async Task Ip(params string[] args) => await Command.RunCheckedAsync("ip", args, TimeSpan.FromSeconds(20), ct);
        async Task In(string ns, params string[] args) =>
            await Command.RunCheckedAsync("ip", ["netns", "exec", ns, .. args], TimeSpan.FromSeconds(20), ct);

        foreach (var ns in new[] { Lan, Router, Wan })
            await Ip("netns", "add", ns);
        // Both veth pairs are created inside the router namespace and their peers moved straight into
        // the other namespaces, so no interface name ever appears in the shared root namespace.
        await Ip("-n", Router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", Lan);
        await Ip("-n", Router, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", Wan);
        await Ip("-n", Lan, "addr", "add", $"{LanAddress}/24", "dev", "eth0");
        await Ip("-n", Router, "addr", "add", $"{RouterLanAddress}/24", "dev", "lan0");
        await Ip("-n", Router, "addr", "add", $"{RouterWanAddress}/24", "dev", "wan0");
        await Ip("-n", Wan, "addr", "add", $"{WanAddress}/24", "dev", "eth0");
        foreach (var (ns, dev) in new[] { (Lan, "lo"), (Lan, "eth0"), (Router, "lo"), (Router, "lan0"), (Router, "wan0"), (Wan, "lo"), (Wan, "eth0") })
            await Ip("-n", ns, "link", "set", dev, "up");
        await Ip("-n", Lan, "route", "add", "default", "via", RouterLanAddress.ToString());
        await Ip("-n", Router, "route", "add", "default", "via", WanAddress.ToString());

        await In(Router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        await In(Router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE");
        await In(Router, "iptables", "-P", "FORWARD", "DROP");
        await In(Router, "iptables", "-A", "FORWARD", "-i", "lan0", "-o", "wan0", "-j", "ACCEPT");
        await In(Router, "iptables", "-A", "FORWARD", "-i", "wan0", "-o", "lan0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
        // Everything else from the WAN side (new connections into the LAN) hits the DROP policy.
    }

    private static async Task DeleteNamespaceAsync(string ns, CancellationToken ct)
    {
        // Processes someone started with plain `ip netns exec` would keep the namespace alive.
        var pids = await Command.RunAsync("ip", ["netns", "pids", ns], TimeSpan.FromSeconds(10), ct);
        foreach (var line in pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(line.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
                Posix.Kill(pid, Posix.SIGKILL);
        }
        await Command.RunAsync("ip", ["netns", "del", ns], TimeSpan.FromSeconds(10), ct);
    }

    /// <summary>Deletes namespaces left by test runs that died before cleaning up (their creating process is gone).</summary>
    private static async Task RemoveStaleAsync(CancellationToken ct)
    {
        if (!Directory.Exists("/var/run/netns"))
            return;
        foreach (var path in Directory.GetFiles("/var/run/netns"))
        {
            var m = OurNamespace().Match(Path.GetFileName(path));
            if (m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var owner)
                && owner != Environment.ProcessId && !Posix.IsAlive(owner))
            {
                await DeleteNamespaceAsync(Path.GetFileName(path), ct);
            }
        }
    }

    private static string? ComputeSkipReason()
    {
        if (!Tools.IsRoot)
            return "needs root for network namespaces (run the tests as root, as ./build.sh test does)";
        if (Tools.SkipReason("ip", "iptables", "tc", "sysctl") is { } missing)
            return missing;
        var probe = $"ph-probe-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        try
        {
            var add = Command.RunAsync("ip", "netns", "add", probe).GetAwaiter().GetResult();
            if (!add.Succeeded)
                return $"`ip netns add` fails here ({add.StandardError.Trim()}); network namespace tests need root in a host or privileged container";
            var nat = Command.RunAsync("ip", "netns", "exec", probe, Tools.Require("iptables"), "-t", "nat", "-L", "-n").GetAwaiter().GetResult();
            if (!nat.Succeeded)
                return $"iptables NAT does not work in a namespace here ({nat.StandardError.Trim()})";
            return null;
        }
        finally
        {
            Command.RunAsync("ip", "netns", "del", probe).GetAwaiter().GetResult();
        }
    }

    [GeneratedRegex(@"^ph-(\d+)-[0-9a-f]{6}-(lan|rtr|wan)$", RegexOptions.CultureInvariant)]
    private static partial Regex OurNamespace();
}
