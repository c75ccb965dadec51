using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

public class NatTopologyTests
{
    private const string Python = "/usr/bin/python3";

    // Accepts connections and prints who connected: the source address the server sees.
    private const string ReportingServer = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()
        print("READY", flush=True)
        while True:
            c, addr = s.accept(); print(f"peer={addr[0]}", flush=True); c.close()
        """;

    private const string Connect = """
        import socket, sys
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
        print("connected")
        """;

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Lan_process_reaches_a_wan_server_which_sees_the_router_address()
    {
        await using var nat = await NatTopology.CreateAsync();
        var server = await nat.StartInAsync(nat.Wan, new PeerStartInfo(Python, "-c", ReportingServer, nat.WanAddress.ToString(), "7000")
        {
            ReadyLine = new Regex("^READY"),
            ReadyTcpPort = 7000,
            ReadyTcpHost = nat.WanAddress.ToString(), // probed from inside the WAN namespace
        });

        var client = await nat.ExecAsync(nat.Lan, Python, ["-c", Connect, nat.WanAddress.ToString(), "7000", "5"]);
        Assert.True(client.Succeeded, client.ToString());

        // The readiness probe connected from inside the WAN namespace; the LAN client arrives masqueraded.
        await server.WaitForLineAsync(new Regex($@"^peer={Regex.Escape(nat.RouterWanAddress.ToString())}$"), TimeSpan.FromSeconds(5));
        Assert.False(server.HasLine(new Regex($"peer={Regex.Escape(nat.LanAddress.ToString())}")), server.Output);
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Wan_process_cannot_open_a_connection_into_the_lan()
    {
        await using var nat = await NatTopology.CreateAsync();
        using var lanServer = await nat.ListenInAsync(nat.Lan, nat.LanAddress, 8081);
        // Give the WAN host a route to the LAN, so only the router's NAT firewall can stop it (an
        // attacker next to the router could do the same).
        await nat.ExecCheckedAsync(nat.Wan, "ip", "route", "add", nat.LanSubnet, "via", nat.RouterWanAddress.ToString());

        var fromWan = await nat.ExecAsync(nat.Wan, Python, ["-c", Connect, nat.LanAddress.ToString(), "8081", "3"]);
        Assert.False(fromWan.Succeeded, fromWan.ToString());
        Assert.Contains("timed out", fromWan.StandardError, StringComparison.OrdinalIgnoreCase);

        // The control: the LAN server does listen, and the LAN side (the router) reaches it.
        var fromRouter = await nat.ExecAsync(nat.Router, Python, ["-c", Connect, nat.LanAddress.ToString(), "8081", "3"]);
        Assert.True(fromRouter.Succeeded, fromRouter.ToString());
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task In_process_sockets_live_in_the_namespace_they_were_made_in()
    {
        await using var nat = await NatTopology.CreateAsync();
        using var wanServer = await nat.ListenInAsync(nat.Wan, nat.WanAddress);
        var port = ((IPEndPoint)wanServer.LocalEndpoint).Port;

        using var client = await nat.ConnectFromAsync(nat.Lan, nat.WanAddress, port, TimeSpan.FromSeconds(5));
        using var accepted = await wanServer.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(nat.RouterWanAddress, ((IPEndPoint)accepted.Client.RemoteEndPoint!).Address);
        Assert.Equal(nat.LanAddress, ((IPEndPoint)client.Client.LocalEndPoint!).Address);

        // The test's own namespace has no such address: the same connect from here cannot work.
        using var outside = new TcpClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAnyAsync<Exception>(async () => await outside.ConnectAsync(nat.WanAddress, port, cts.Token));
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Dropping_all_upstream_packets_cuts_the_link_and_clearing_restores_it()
    {
        await using var nat = await NatTopology.CreateAsync();
        using var wanServer = await nat.ListenInAsync(nat.Wan, nat.WanAddress);
        var port = ((IPEndPoint)wanServer.LocalEndpoint).Port;

        await nat.DropPacketsAsync(NatDirection.Upstream, 100);
        await Assert.ThrowsAsync<TimeoutException>(() => nat.ConnectFromAsync(nat.Lan, nat.WanAddress, port, TimeSpan.FromSeconds(2)));

        await nat.ClearPacketLossAsync();
        using var client = await nat.ConnectFromAsync(nat.Lan, nat.WanAddress, port, TimeSpan.FromSeconds(5));
        Assert.True(client.Connected);
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Partial_packet_loss_leaves_tcp_working()
    {
        await using var nat = await NatTopology.CreateAsync();
        await nat.DropPacketsAsync(NatDirection.Downstream, 20);
        var rules = await nat.ExecCheckedAsync(nat.Router, "iptables", "-S", "FORWARD");
        Assert.Contains("--probability 0.2", rules.StandardOutput);

        using var wanServer = await nat.ListenInAsync(nat.Wan, nat.WanAddress);
        var port = ((IPEndPoint)wanServer.LocalEndpoint).Port;
        using var client = await nat.ConnectFromAsync(nat.Lan, nat.WanAddress, port, TimeSpan.FromSeconds(20));
        Assert.True(client.Connected);
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Bandwidth_limit_slows_an_upload_to_about_the_rate()
    {
        await using var nat = await NatTopology.CreateAsync();
        using var wanServer = await nat.ListenInAsync(nat.Wan, nat.WanAddress);
        var port = ((IPEndPoint)wanServer.LocalEndpoint).Port;
        await nat.LimitBandwidthAsync(NatDirection.Upstream, kbitPerSecond: 1000);

        const int Bytes = 250_000; // 2 Mbit: 2 s at 1000 kbit/s
        using var client = await nat.ConnectFromAsync(nat.Lan, nat.WanAddress, port, TimeSpan.FromSeconds(5));
        using var accepted = await wanServer.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(5));
        var clock = Stopwatch.StartNew();
        var send = client.GetStream().WriteAsync(new byte[Bytes]).AsTask();
        var received = 0;
        var buffer = new byte[65536];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (received < Bytes)
            received += await accepted.GetStream().ReadAsync(buffer, cts.Token);
        clock.Stop();
        await send;

        // A lower bound only: a busy machine can make it slower, but nothing but the limit makes it this slow.
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"250 kB took {clock.Elapsed.TotalSeconds:0.00} s through a 1000 kbit/s limit");

        await nat.ClearBandwidthLimitAsync(NatDirection.Upstream);
        var qdisc = await nat.ExecCheckedAsync(nat.Router, "tc", "qdisc", "show", "dev", "wan0");
        Assert.DoesNotContain("tbf", qdisc.StandardOutput);
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Namespaces_left_by_a_dead_test_run_are_swept_and_live_ones_are_not()
    {
        // A pid that is not running: the highest pid possible is never handed out this early.
        var deadPid = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), System.Globalization.CultureInfo.InvariantCulture) - 1;
        Assert.False(Directory.Exists($"/proc/{deadPid}"));
        var stale = $"ph-{deadPid}-abc123-lan";
        // A namespace of a run that is alive (this one) with the same shape must survive.
        var alive = $"ph-{Environment.ProcessId}-abc123-wan";
        await Command.RunCheckedAsync("ip", "netns", "add", stale);
        await Command.RunCheckedAsync("ip", "netns", "add", alive);
        try
        {
            await using var nat = await NatTopology.CreateAsync();
            var listed = (await Command.RunCheckedAsync("ip", "netns", "list")).StandardOutput;
            Assert.DoesNotContain(stale, listed);
            Assert.Contains(alive, listed);
        }
        finally
        {
            await Command.RunAsync("ip", "netns", "del", stale);
            await Command.RunAsync("ip", "netns", "del", alive);
        }
    }

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task Dispose_deletes_the_namespaces_and_kills_what_runs_in_them()
    {
        var nat = await NatTopology.CreateAsync();
        var names = new[] { nat.Lan, nat.Router, nat.Wan };
        var listed = await Command.RunCheckedAsync("ip", "netns", "list");
        Assert.All(names, n => Assert.Contains(n, listed.StandardOutput));
        var sleeper = await nat.StartInAsync(nat.Lan, new PeerStartInfo("sh", "-c", "echo READY; exec sleep 300") { ReadyLine = new Regex("^READY") });
        var pid = sleeper.Id;

        await nat.DisposeAsync();

        listed = await Command.RunCheckedAsync("ip", "netns", "list");
        Assert.All(names, n => Assert.DoesNotContain(n, listed.StandardOutput));
        Assert.False(File.Exists($"/proc/{pid}/stat") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal), $"pid {pid} survived");
    }
}
