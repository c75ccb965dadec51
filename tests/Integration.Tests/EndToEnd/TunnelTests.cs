using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// LAN TCP services through the uplink (issue #15): a relay and an edge as real processes, TCP servers
/// in the "LAN" (this test process, loopback) exposed by name, and WAN clients going through the
/// relay's tunnel WebSocket or the <c>pinhole-relay tunnel</c> CLI.
/// </summary>
[Collection(EndToEnd.Collection)]
public sealed partial class TunnelTests(TunnelStack stack, ITestOutputHelper output) : IClassFixture<TunnelStack>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_large_transfer_round_trips_exactly_through_the_cli_and_is_audited()
    {
        stack.Output = output;
        // The issue's 1 GB by default (about 20-40 s here); PINHOLE_TUNNEL_MB=N for another size.
        var megabytes = int.TryParse(Environment.GetEnvironmentVariable("PINHOLE_TUNNEL_MB"), CultureInfo.InvariantCulture, out var mb) ? mb : 1024;
        long total = megabytes * 1024L * 1024;
        await using var cli = await stack.StartCliAsync("echo");

        var direct = await EchoTransferAsync(stack.Echo.EndPoint, total);
        var tunnelled = await EchoTransferAsync(cli.EndPoint, total);

        Assert.Equal(direct.SentHash, tunnelled.SentHash); // same deterministic data both times
        Assert.Equal(tunnelled.SentHash, tunnelled.ReceivedHash);
        Assert.Equal(total, tunnelled.Received);
        output.WriteLine($"echo of {megabytes} MB: direct TCP {Rate(total, direct.Elapsed)}, through the tunnel (CLI -> relay -> uplink -> edge) {Rate(total, tunnelled.Elapsed)}");

        // The opening and the end are in the audit log with who, which device and service, and the bytes.
        var audit = await WaitForAsync(async () =>
        {
            var text = await stack.Api.GetStringAsync(new Uri("/api/audit", UriKind.Relative));
            return text.Contains("tunnel.close", StringComparison.Ordinal) && text.Contains($"{total} bytes to the device", StringComparison.Ordinal) ? text : null;
        }, "the tunnel's close in the audit log");
        Assert.Contains("\"tunnel.open\"", audit, StringComparison.Ordinal);
        Assert.Contains("gw1/echo", audit, StringComparison.Ordinal);
        Assert.Contains("token:ci", audit, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hundred_parallel_connections_each_get_their_own_bytes_back()
    {
        stack.Output = output;
        await using var cli = await stack.StartCliAsync("echo");
        var clock = Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(() => EchoTransferAsync(cli.EndPoint, 256 * 1024 + i, seed: i))));
        foreach (var r in results)
        {
            Assert.Equal(r.SentHash, r.ReceivedHash);
            Assert.Equal(r.Sent, r.Received);
        }
        Assert.Equal(100, results.Select(r => r.SentHash).Distinct().Count());
        output.WriteLine($"100 parallel echoes of 256 KiB in {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task Half_closes_carry_through_in_both_directions()
    {
        stack.Output = output;
        // Client to service: the client sends and half-closes; the service reads to the end and only then answers.
        await using (var count = await stack.StartCliAsync("count"))
        {
            using var client = await ConnectAsync(count.EndPoint);
            var data = Pattern(3_000_000, seed: 7);
            await client.SendAsync(data, SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            var answer = Encoding.ASCII.GetString(await ReadToEndAsync(client));
            Assert.Equal($"{data.Length} {Convert.ToHexString(SHA256.HashData(data))}\n", answer);
        }

        // Service to client: the service sends and half-closes first; the client still sends afterwards, and the service gets it all.
        await using (var greet = await stack.StartCliAsync("greet"))
        {
            var received = stack.Greet.NextReceived();
            using var client = await ConnectAsync(greet.EndPoint);
            var banner = await ReadToEndAsync(client);
            Assert.Equal(Pattern(LanServer.GreetingBytes, seed: 1), banner);
            var after = Pattern(500_000, seed: 9);
            await client.SendAsync(after, SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            var got = await received.WaitAsync(Wait);
            Assert.Equal(Convert.ToHexString(SHA256.HashData(after)), Convert.ToHexString(SHA256.HashData(got)));
        }
    }

    [Fact]
    public async Task An_http_server_in_the_lan_is_reached_by_name_with_keep_alive_and_bodies_both_ways()
    {
        stack.Output = output;
        await using var cli = await stack.StartCliAsync("web");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = new Uri($"http://{cli.EndPoint}/"), Timeout = Wait };
        var accepted = stack.Web.Accepted;

        // Downloads: the LAN server's body arrives byte for byte, twice over one kept-alive connection.
        var expected = LanHttpServer.Body(3_000_000);
        for (var i = 0; i < 2; i++)
        {
            using var response = await http.GetAsync(new Uri("file?bytes=3000000", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("pinhole-lan-test", response.Headers.Server.ToString());
            Assert.Equal(Convert.ToHexString(SHA256.HashData(expected)), Convert.ToHexString(SHA256.HashData(await response.Content.ReadAsByteArrayAsync())));
        }

        // Upload: the server hashes what it received and answers with the hash and the length.
        var upload = Pattern(2_000_000, seed: 11);
        using (var response = await http.PostAsync(new Uri("hash", UriKind.Relative), new ByteArrayContent(upload)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"{upload.Length} {Convert.ToHexString(SHA256.HashData(upload))}", await response.Content.ReadAsStringAsync());
        }

        // An unknown path is the LAN server's own 404, carried through unchanged.
        using (var response = await http.GetAsync(new Uri("missing", UriKind.Relative)))
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);

        // Keep-alive held: all four requests went through one tunnel connection to the LAN server.
        Assert.Equal(accepted + 1, stack.Web.Accepted);
    }

    [Fact]
    public async Task The_device_refuses_what_it_does_not_expose()
    {
        stack.Output = output;
        // The relay asks; the device decides: a name not in expose is refused by the device.
        var (status, error) = await stack.RefusedUpgradeAsync("/devices/gw1/tunnels/postgres", stack.Token);
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("refused: this device does not expose \"postgres\"", error, StringComparison.Ordinal);

        // An exposed name whose target does not answer: the device says so.
        (status, error) = await stack.RefusedUpgradeAsync("/devices/gw1/tunnels/dead", stack.Token);
        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Contains("cannot connect to dead", error, StringComparison.Ordinal);

        // The CLI reports it in one line and exits non-zero.
        var (code, _, err) = await stack.RunCliAsync(["tunnel", "gw1", "postgres", "--listen", "127.0.0.1:0", "--relay", stack.HttpUri.ToString(), "--token", stack.Token]);
        Assert.Equal(1, code);
        Assert.Contains("relay refused the tunnel (HTTP 404): device \"gw1\" refused: this device does not expose \"postgres\"", err, StringComparison.Ordinal);
        Assert.Contains("pinhole_tunnel_refused_total{} 3", await stack.EdgeMetricsAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_admins_open_tunnels()
    {
        stack.Output = output;
        var (status, error) = await stack.RefusedUpgradeAsync("/devices/gw1/tunnels/echo", token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("admins", error, StringComparison.Ordinal);

        (status, error) = await stack.RefusedUpgradeAsync("/devices/gw1/tunnels/echo", token: null, cookie: await stack.LoginCookieAsync(TunnelStack.ViewerUser, TunnelStack.ViewerPassword));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("viewer is not an admin", error, StringComparison.Ordinal);

        (status, error) = await stack.RefusedUpgradeAsync("/devices/nope/tunnels/echo", stack.Token);
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("no device \"nope\"", error, StringComparison.Ordinal);

        (status, _) = await stack.RefusedUpgradeAsync("/devices/gw1/tunnels/echo", stack.Token + "x");
        Assert.Equal(HttpStatusCode.Unauthorized, status);

        // An admin's session works as well as a token (the CLI's --user).
        var admin = await stack.LoginCookieAsync(TunnelStack.AdminUser, TunnelStack.AdminPassword);
        using var ws = await stack.OpenWebSocketAsync("echo", token: null, cookie: admin);
        await ws.SendAsync("ping"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None);
        var buffer = new byte[16];
        var r = await ws.ReceiveAsync(buffer, CancellationToken.None);
        Assert.Equal("ping", Encoding.ASCII.GetString(buffer, 0, r.Count));
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
    }

    [Fact]
    public async Task Open_close_cycles_leak_no_stream_socket_or_memory()
    {
        stack.Output = output;
        // The issue's 10,000 by default (about 50-75 s here); PINHOLE_TUNNEL_CYCLES=N for another count.
        var cycles = int.TryParse(Environment.GetEnvironmentVariable("PINHOLE_TUNNEL_CYCLES"), CultureInfo.InvariantCulture, out var c) ? c : 10000;
        await CyclesAsync(50); // warm-up: pools, JIT, the first connections' buffers
        await Task.Delay(500);
        var streamsBefore = await stack.EdgeStreamsTotalAsync();
        var relayFds = OpenFds(stack.Relay!.Id);
        var edgeFds = OpenFds(stack.Edge!.Id);

        // Memory: the processes' anonymous resident memory (heap, GC heap, stacks) after the warm-up, after the first half
        // of the cycles and after the second. The first half may still grow the GC's working set; a leak grows both halves
        // alike, so the second half's growth is what is bounded.
        var relayMemory = new List<long> { AnonymousResidentBytes(stack.Relay.Id) };
        var edgeMemory = new List<long> { AnonymousResidentBytes(stack.Edge.Id) };
        var clock = Stopwatch.StartNew();
        await CyclesAsync(cycles / 2);
        relayMemory.Add(AnonymousResidentBytes(stack.Relay.Id));
        edgeMemory.Add(AnonymousResidentBytes(stack.Edge.Id));
        await CyclesAsync(cycles - cycles / 2);
        output.WriteLine($"{cycles} open/echo/close cycles in {clock.ElapsedMilliseconds} ms ({cycles / clock.Elapsed.TotalSeconds:0} per second)");

        // Every stream is gone on both ends, and the processes hold no more sockets than before.
        await WaitForAsync(async () => (await stack.EdgeMetricsAsync()).Contains("pinhole_tunnel_streams_open{} 0", StringComparison.Ordinal) ? "" : null, "no open stream at the edge");
        await WaitForAsync(async () => (await stack.Api.GetStringAsync(new Uri("/metrics", UriKind.Relative))).Contains("pinhole_tunnel_streams_open{device=\"gw1\"} 0", StringComparison.Ordinal) ? "" : null, "no open stream at the relay");
        int relayAfter = 0, edgeAfter = 0;
        await WaitForAsync(() =>
        {
            relayAfter = OpenFds(stack.Relay.Id);
            edgeAfter = OpenFds(stack.Edge.Id);
            return Task.FromResult(relayAfter <= relayFds + 8 && edgeAfter <= edgeFds + 8 ? "" : null);
        }, "file descriptors back to where they were", throwOnTimeout: false);
        output.WriteLine($"file descriptors: relay {relayFds} -> {relayAfter}, edge {edgeFds} -> {edgeAfter}");
        relayMemory.Add(AnonymousResidentBytes(stack.Relay.Id));
        edgeMemory.Add(AnonymousResidentBytes(stack.Edge.Id));
        static string Mb(List<long> m) => string.Join(" -> ", m.Select(b => (b / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture))) + " MB";
        output.WriteLine($"anonymous resident memory (after warm-up -> half the cycles -> all): relay {Mb(relayMemory)}, edge {Mb(edgeMemory)}");
        // A leak of one socket per cycle would be thousands; a handful is the runtime's own churn.
        Assert.InRange(relayAfter, 0, relayFds + 8);
        Assert.InRange(edgeAfter, 0, edgeFds + 8);
        Assert.Equal(streamsBefore + cycles, await stack.EdgeStreamsTotalAsync());
        // 2,000 cycles: a leak of 16 KiB a cycle (a stream's buffers, a socket's) grows the second half by 16 MB; 10,000
        // cycles find 4 KiB a cycle. The GC's own slack (its budget before collecting, which it sizes to the load) is some MB.
        var bound = Math.Max(16L << 20, (cycles - cycles / 2) * 4096L);
        Assert.True(relayMemory[2] - relayMemory[1] <= bound, $"the relay grew by {(relayMemory[2] - relayMemory[1]) >> 20} MB over the second {cycles - cycles / 2} cycles: {Mb(relayMemory)}");
        Assert.True(edgeMemory[2] - edgeMemory[1] <= bound, $"the edge grew by {(edgeMemory[2] - edgeMemory[1]) >> 20} MB over the second {cycles - cycles / 2} cycles: {Mb(edgeMemory)}");
    }

    // RssAnon of /proc/PID/status (kernel 4.5+): resident anonymous pages, without the mapped files (assemblies) whose pages come and go.
    private static long AnonymousResidentBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                return long.Parse(line["RssAnon:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"no RssAnon in /proc/{pid}/status");
    }

    private async Task CyclesAsync(int count)
    {
        var before = stack.Echo.Accepted;
        // A few at a time, as tools do; each is a whole open, one byte each way, and a clean close.
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, ct) =>
        {
            using var ws = await stack.OpenWebSocketAsync("echo", stack.Token);
            await ws.SendAsync(new[] { (byte)i }, WebSocketMessageType.Binary, true, ct);
            var buffer = new byte[4];
            var r = await ws.ReceiveAsync(buffer, ct);
            Assert.Equal((byte)i, buffer[0]);
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", ct);
            r = await ws.ReceiveAsync(buffer, ct); // the relay's close once the service's side ended
            Assert.Equal(WebSocketMessageType.Close, r.MessageType);
        });
        Assert.Equal(before + count, stack.Echo.Accepted);
    }

    private static int OpenFds(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    private sealed record Transfer(long Sent, long Received, string SentHash, string ReceivedHash, TimeSpan Elapsed);

    // Sends `total` bytes of a deterministic pattern while reading the echo back; hashes both sides.
    private static async Task<Transfer> EchoTransferAsync(IPEndPoint to, long total, int seed = 0)
    {
        using var socket = await ConnectAsync(to);
        var clock = Stopwatch.StartNew();
        var block = Pattern(1024 * 1024, seed);
        var send = Task.Run(async () =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var left = total;
            var turn = 0;
            while (left > 0)
            {
                var n = (int)Math.Min(left, block.Length);
                // Rotate the block per megabyte so a misordered chunk cannot hash the same.
                var offset = turn++ % 251;
                var chunk = block.AsMemory(offset, Math.Min(n, block.Length - offset));
                await socket.SendAsync(chunk, SocketFlags.None);
                hash.AppendData(chunk.Span);
                left -= chunk.Length;
            }
            socket.Shutdown(SocketShutdown.Send);
            return Convert.ToHexString(hash.GetHashAndReset());
        });
        using var received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long count = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0) break;
            received.AppendData(buffer, 0, n);
            count += n;
        }
        var sentHash = await send;
        return new Transfer(total, count, sentHash, Convert.ToHexString(received.GetHashAndReset()), clock.Elapsed);
    }

    internal static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static async Task<Socket> ConnectAsync(IPEndPoint to)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(to);
        return socket;
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        using var timeout = new CancellationTokenSource(Wait);
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            if (n == 0) return all.ToArray();
            all.Write(buffer, 0, n);
        }
    }

    private static string Rate(long bytes, TimeSpan elapsed) => $"{bytes / elapsed.TotalSeconds / 1e6:0.0} MB/s ({elapsed.TotalSeconds:0.00} s)";

    private async Task<string> WaitForAsync(Func<Task<string?>> probe, string what, bool throwOnTimeout = true)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            if (await probe() is { } result) return result;
            if (DateTime.UtcNow > deadline)
            {
                if (throwOnTimeout) Assert.Fail($"not {what} within {Wait.TotalSeconds:0} s\n{stack.Logs}");
                return "";
            }
            await Task.Delay(100);
        }
    }
}

/// <summary>The relay and edge processes, an API token, and the LAN services, shared by <see cref="TunnelTests"/>.</summary>
public sealed partial class TunnelStack : IAsyncLifetime
{
    public const string AdminUser = "admin";
    public const string AdminPassword = "admin-pass";
    public const string ViewerUser = "viewer";
    public const string ViewerPassword = "viewer-pass";
    public const string OfflineDevice = "gw-offline";
    public const string EdgePagePassword = "edge-page-password";

    public ITestOutputHelper? Output { get; set; }
    public string Dir { get; } = EndToEnd.NewWorkDir("tunnel");
    public string Token { get; private set; } = "";
    public Uri HttpUri { get; private set; } = null!;
    public HttpClient Api { get; private set; } = null!;
    public PeerProcess? Relay { get; private set; }
    public PeerProcess? Edge { get; private set; }
    public int WebPort { get; } = FreePort.Get();
    public LanServer Echo { get; } = new(LanServer.Mode.Echo);
    public LanServer Count { get; } = new(LanServer.Mode.Count);
    public LanServer Greet { get; } = new(LanServer.Mode.Greet);
    public LanHttpServer Web { get; } = new();
    public string Logs => EndToEnd.Describe(Edge, Relay);

    [GeneratedRegex(@"^pinhole-relay: serving (http://\S+) ")]
    private static partial Regex Serving();

    [GeneratedRegex(@"listening on (\S+) ->")]
    private static partial Regex Listening();

    public async Task InitializeAsync()
    {
        var relayConfig = Path.Combine(Dir, "relay.json");
        File.WriteAllText(relayConfig, JsonSerializer.Serialize(new
        {
            http = "http://127.0.0.1:0",
            rtsp = "127.0.0.1:0",
            dataDir = Path.Combine(Dir, "relay-data"),
            // OfflineDevice is registered but never connects (the device page's 503).
            devices = new[] { new { id = EndToEnd.Device, token = EndToEnd.Token }, new { id = OfflineDevice, token = "offline-device-token-0123456789" } },
            viewers = new object[] { new { user = AdminUser, password = AdminPassword, role = "admin" }, new { user = ViewerUser, password = ViewerPassword } },
            // Every tunnel connection is an HTTP connection: 100 parallel ones from one address need more than the default 64.
            limits = new { httpConnectionsPerAddress = 256 },
        }));
        var (code, token, err) = await RunCliAsync(["tokens", "add", "ci", "--config", relayConfig]);
        Assert.True(code == 0, err);
        Token = token.Trim();
        Relay = await PeerProcess.StartAsync(EndToEnd.RelayStartInfo(relayConfig, null) with { ReadyLine = Serving() });
        HttpUri = new Uri(Relay.ReadyMatch!.Groups[1].Value);
        Api = new HttpClient { BaseAddress = HttpUri, Timeout = TimeSpan.FromSeconds(30) };
        Api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);

        // "dead": an exposed name whose target listens nowhere (a port bound and released).
        var dead = FreePort.Get();
        var edgeConfig = Path.Combine(Dir, "edge.json");
        File.WriteAllText(edgeConfig, JsonSerializer.Serialize(new
        {
            deviceId = EndToEnd.Device,
            token = EndToEnd.Token,
            relays = new[] { $"ws://{HttpUri.Authority}/uplink" },
            web = new { listen = $"http://127.0.0.1:{WebPort}", password = EdgePagePassword },
            dataDir = Path.Combine(Dir, "edge-data"),
            expose = new object[]
            {
                new { name = "echo", target = Echo.EndPoint.ToString() },
                new { name = "count", target = Count.EndPoint.ToString() },
                new { name = "greet", target = Greet.EndPoint.ToString() },
                new { name = "web", target = Web.EndPoint.ToString() },
                new { name = "dead", target = $"127.0.0.1:{dead}" },
            },
        }));
        Edge = await PeerProcess.StartAsync(EndToEnd.EdgeStartInfo(edgeConfig, WebPort, null));
        // Wait for the uplink: the device is listed as connected.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!(await Api.GetStringAsync(new Uri("/api/devices/gw1", UriKind.Relative))).Contains("\"online\":true", StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the edge did not connect\n" + Logs);
            await Task.Delay(100);
        }
    }

    public async Task<long> EdgeStreamsTotalAsync()
    {
        var m = Regex.Match(await EdgeMetricsAsync(), @"pinhole_tunnel_streams_total(?:\{\})? (\d+)");
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    public async Task DisposeAsync()
    {
        Api?.Dispose();
        if (Edge is not null) await Edge.DisposeAsync();
        if (Relay is not null) await Relay.DisposeAsync();
        Echo.Dispose();
        Count.Dispose();
        Greet.Dispose();
        Web.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public async Task<string> EdgeMetricsAsync()
    {
        using var http = new HttpClient();
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{WebPort}/metrics"));
    }

    /// <summary>Starts <c>pinhole-relay tunnel gw1 NAME --listen 127.0.0.1:0</c> and waits for the port it picked.</summary>
    public async Task<RunningCli> StartCliAsync(string name)
    {
        var process = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", EndToEnd.RelayDll, "tunnel", EndToEnd.Device, name,
            "--listen", "127.0.0.1:0", "--relay", HttpUri.ToString(), "--token", Token)
        {
            Name = "tunnel-cli",
            ReadyLine = Listening(),
            OnOutputLine = line => { try { Output?.WriteLine("[cli] " + line); } catch (InvalidOperationException) { } },
        });
        return new RunningCli(process, IPEndPoint.Parse(process.ReadyMatch!.Groups[1].Value));
    }

    public async Task<(int Code, string Out, string Err)> RunCliAsync(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(EndToEnd.RelayDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    public async Task<string> LoginCookieAsync(string user, string password)
    {
        var cookies = new CookieContainer();
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies }) { BaseAddress = HttpUri };
        var login = await http.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", user), new("password", password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return cookies.GetCookieHeader(HttpUri);
    }

    public Uri WebSocketUri(string path) => new($"ws://{HttpUri.Authority}{path}");

    public async Task<ClientWebSocket> OpenWebSocketAsync(string name, string? token, string? cookie = null)
    {
        var ws = new ClientWebSocket();
        if (token is not null) ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        if (cookie is not null) ws.Options.SetRequestHeader("Cookie", cookie);
        await ws.ConnectAsync(WebSocketUri($"/devices/{EndToEnd.Device}/tunnels/{name}"), CancellationToken.None);
        return ws;
    }

    /// <summary>An upgrade the relay must refuse: its status and the reason header.</summary>
    public async Task<(HttpStatusCode Status, string Error)> RefusedUpgradeAsync(string path, string? token, string? cookie = null)
    {
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (token is not null) ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        if (cookie is not null) ws.Options.SetRequestHeader("Cookie", cookie);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(WebSocketUri(path), CancellationToken.None));
        var error = ws.HttpResponseHeaders?.TryGetValue("Pinhole-Error", out var values) == true ? string.Join(" ", values) : "";
        return (ws.HttpStatusCode, error);
    }
}

/// <summary>A running <c>pinhole-relay tunnel</c> and the local port it listens on.</summary>
public sealed class RunningCli(PeerProcess process, IPEndPoint endPoint) : IAsyncDisposable
{
    public IPEndPoint EndPoint { get; } = endPoint;

    public ValueTask DisposeAsync() => process.DisposeAsync();
}

/// <summary>A TCP service in the "LAN" on loopback: echo, count (read to the end, then answer), or greet (send and half-close first, then read).</summary>
public sealed class LanServer : IDisposable
{
    public const int GreetingBytes = 200_000;
    private readonly Socket _listener = new(SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Mode _mode;
    private TaskCompletionSource<byte[]> _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _accepted;

    public enum Mode { Echo, Count, Greet }

    public LanServer(Mode mode)
    {
        _mode = mode;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(512);
        _ = Task.Run(AcceptLoopAsync);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>What the next greet connection receives after its greeting.</summary>
    public Task<byte[]> NextReceived()
    {
        _received = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        return _received.Task;
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptAsync(_stop.Token);
                Interlocked.Increment(ref _accepted);
                _ = Task.Run(() => ServeAsync(socket));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        {
            try
            {
                var buffer = new byte[256 * 1024];
                switch (_mode)
                {
                    case Mode.Echo:
                        while (true)
                        {
                            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                            if (n == 0) break;
                            var sent = 0;
                            while (sent < n) sent += await socket.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, _stop.Token);
                        }
                        socket.Shutdown(SocketShutdown.Send);
                        break;
                    case Mode.Count:
                    {
                        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                        long count = 0;
                        while (true)
                        {
                            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                            if (n == 0) break;
                            hash.AppendData(buffer, 0, n);
                            count += n;
                        }
                        await socket.SendAsync(Encoding.ASCII.GetBytes($"{count} {Convert.ToHexString(hash.GetHashAndReset())}\n"), SocketFlags.None, _stop.Token);
                        socket.Shutdown(SocketShutdown.Send);
                        break;
                    }
                    case Mode.Greet:
                    {
                        await socket.SendAsync(TunnelTests.Pattern(GreetingBytes, seed: 1), SocketFlags.None, _stop.Token);
                        socket.Shutdown(SocketShutdown.Send);
                        using var all = new MemoryStream();
                        while (true)
                        {
                            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                            if (n == 0) break;
                            all.Write(buffer, 0, n);
                        }
                        _received.TrySetResult(all.ToArray());
                        break;
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        _stop.Dispose();
    }
}

/// <summary>
/// A small HTTP/1.1 server in the "LAN" (Kestrel is not needed for three routes): <c>GET /file?bytes=N</c>
/// answers N deterministic bytes, <c>POST /hash</c> answers "LENGTH SHA256" of the body, anything else 404.
/// Keeps connections alive and counts them.
/// </summary>
public sealed class LanHttpServer : IDisposable
{
    private readonly Socket _listener = new(SocketType.Stream, ProtocolType.Tcp);
    private int _accepted;

    public LanHttpServer()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        _ = Task.Run(AcceptLoopAsync);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public int Accepted => Volatile.Read(ref _accepted);

    public static byte[] Body(int length)
    {
        var body = new byte[length];
        for (var i = 0; i < length; i++) body[i] = (byte)(i * 31 + (i >> 11));
        return body;
    }

    public void Dispose() => _listener.Dispose();

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket client;
            try { client = await _listener.AcceptAsync(); }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { return; }
            Interlocked.Increment(ref _accepted);
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private static async Task ServeAsync(Socket client)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var buffer = new List<byte>();
        var chunk = new byte[64 * 1024];
        try
        {
            while (true)
            {
                // Read a request head.
                int headEnd;
                while ((headEnd = IndexOfHeadEnd(buffer)) < 0)
                {
                    var n = await stream.ReadAsync(chunk);
                    if (n == 0) return;
                    buffer.AddRange(chunk.AsSpan(0, n));
                }
                var head = Encoding.ASCII.GetString(buffer.GetRange(0, headEnd).ToArray());
                buffer.RemoveRange(0, headEnd + 4);
                var lines = head.Split("\r\n");
                var target = lines[0].Split(' ');
                var length = lines.Skip(1).Select(l => l.Split(':', 2)).Where(kv => kv.Length == 2 && kv[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    .Select(kv => int.Parse(kv[1].Trim(), CultureInfo.InvariantCulture)).FirstOrDefault();
                while (buffer.Count < length)
                {
                    var n = await stream.ReadAsync(chunk);
                    if (n == 0) return;
                    buffer.AddRange(chunk.AsSpan(0, n));
                }
                var body = buffer.GetRange(0, length).ToArray();
                buffer.RemoveRange(0, length);

                var (status, answer) = (target[0], target[1]) switch
                {
                    ("GET", var t) when t.StartsWith("/file?bytes=", StringComparison.Ordinal) => ("200 OK", Body(int.Parse(t["/file?bytes=".Length..], CultureInfo.InvariantCulture))),
                    ("POST", "/hash") => ("200 OK", Encoding.ASCII.GetBytes($"{body.Length} {Convert.ToHexString(SHA256.HashData(body))}")),
                    _ => ("404 Not Found", Encoding.ASCII.GetBytes("not here")),
                };
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nServer: pinhole-lan-test\r\nContent-Length: {answer.Length}\r\nContent-Type: application/octet-stream\r\n\r\n"));
                await stream.WriteAsync(answer);
            }
        }
        catch (IOException) { }
        catch (SocketException) { }
    }

    private static int IndexOfHeadEnd(List<byte> buffer)
    {
        for (var i = 0; i + 3 < buffer.Count; i++)
            if (buffer[i] == '\r' && buffer[i + 1] == '\n' && buffer[i + 2] == '\r' && buffer[i + 3] == '\n') return i;
        return -1;
    }
}
