using System.Net;
using System.Net.Sockets;
using System.Text;
using Pinhole.Relay.Configuration;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Web;

/// <summary>The relay's HTTP port (pages, player WebSockets, API, device uplinks) under a connection flood.</summary>
public class HttpFloodTests
{
    // A slowloris: a request that never ends its headers, holding its connection for as long as the server lets it.
    private static async Task<Socket> SlowClientAsync(int port, string from)
    {
        var s = await LoopbackClient.ConnectFromAsync(from, new IPEndPoint(IPAddress.Loopback, port));
        // A connection over the cap may be reset before (or while) this is sent: that is the refusal.
        try { await s.SendAsync(Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Slow: ")); }
        catch (SocketException) { }
        return s;
    }

    // True when the server closed (or reset) the connection within the time; false while it still holds it.
    private static async Task<bool> ClosedByServerAsync(Socket s, TimeSpan within)
    {
        using var cts = new CancellationTokenSource(within);
        try { return await s.ReceiveAsync(new byte[256], cts.Token) == 0; }
        catch (OperationCanceledException) { return false; }
        catch (SocketException) { return true; }
    }

    private static async Task<HttpStatusCode> HealthzFromAsync(int port, string from)
    {
        using var handler = LoopbackClient.Handler(from);
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
        using var r = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/healthz"));
        return r.StatusCode;
    }

    [Fact]
    public async Task A_flood_of_slow_connections_from_one_address_takes_only_that_address_slots()
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-httpflood-").FullName;
        var flood = new List<Socket>();
        try
        {
            var config = new RelayConfig
            {
                Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = dir,
                Limits = new LimitsConfig { HttpConnectionsPerAddress = 8 },
                Metrics = new MetricsConfig { Public = true },
            };
            await using var relay = await RelayApp.StartAsync(config);
            var port = relay.HttpUri.Port;

            // The attacker at 127.0.0.2 holds its 8 slots with requests that never end...
            for (var i = 0; i < 8; i++) flood.Add(await SlowClientAsync(port, "127.0.0.2"));
            foreach (var s in flood) Assert.False(await ClosedByServerAsync(s, TimeSpan.FromMilliseconds(200)), "an admitted slow connection was closed at once");
            // ...and every further connection from it is closed at once, before anything is read.
            for (var i = 0; i < 20; i++)
            {
                bool refused;
                try
                {
                    using var extra = await SlowClientAsync(port, "127.0.0.2");
                    refused = await ClosedByServerAsync(extra, TimeSpan.FromSeconds(5));
                }
                catch (SocketException)
                {
                    refused = true; // reset while connecting: the server aborted it at once
                }
                Assert.True(refused, $"connection {9 + i} from the flooding address was held");
            }

            // Everyone else is served meanwhile.
            Assert.Equal(HttpStatusCode.OK, await HealthzFromAsync(port, "127.0.0.1"));
            Assert.Equal(HttpStatusCode.OK, await HealthzFromAsync(port, "127.0.0.3"));
            using (var http = new HttpClient { BaseAddress = relay.HttpUri })
            {
                var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
                var line = metrics.Split('\n').Single(l => l.StartsWith("pinhole_relay_refusals_total{cause=\"http-connections-per-address\"}", StringComparison.Ordinal));
                Assert.Equal(20, double.Parse(line.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture));
            }

            // When the flood lets go, its address gets its slots back.
            foreach (var s in flood) s.Dispose();
            flood.Clear();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            HttpStatusCode? again = null;
            while (DateTime.UtcNow < deadline)
            {
                try { again = await HealthzFromAsync(port, "127.0.0.2"); break; }
                catch (HttpRequestException) { await Task.Delay(100); }
            }
            Assert.Equal(HttpStatusCode.OK, again);
        }
        finally
        {
            foreach (var s in flood) s.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_cap_is_configurable_and_0_turns_it_off()
    {
        var config = RelayConfigLoader.Load("""{ "anonymousViewing": true, "limits": { "httpConnectionsPerAddress": 0 } }""", Path.GetTempPath(), out var problems);
        Assert.Empty(problems);
        Assert.Equal(0, config!.Limits.HttpConnectionsPerAddress);
        Assert.Equal(64, new LimitsConfig().HttpConnectionsPerAddress);

        Assert.Null(RelayConfigLoader.Load("""{ "limits": { "httpConnectionsPerAddress": -1 } }""", Path.GetTempPath(), out problems));
        Assert.Contains(problems, p => p.StartsWith("limits.httpConnectionsPerAddress:", StringComparison.Ordinal));
    }
}
