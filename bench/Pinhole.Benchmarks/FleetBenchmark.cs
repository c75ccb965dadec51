using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost;
using Pinhole.EdgeHost.Web;
using Pinhole.Relay;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Transport.Uplink;

namespace Pinhole.Benchmarks;

/// <summary>
/// Fleet configuration over the uplink (issue 11). (1) One real edge host: time from
/// <c>PUT /api/devices/ID/config</c> to the relay holding the device's "applied" report, over 20
/// changes, beside the same change saved on the device itself (the local page's path, no relay).
/// (2) 100 simulated devices (the uplink protocol over WebSockets, answering every ConfigPush with
/// "applied") connected at once: a PUT for each, and separately 100 devices connecting at once with a
/// revision waiting for each. Targets: median under 2 s on loopback; all 100 applied within 10 s.
/// </summary>
public sealed class FleetBenchmark : IBenchmark
{
    /// <summary>The figures this section replaced and why they moved (kept in the section when it is re-run).</summary>
    private const string PreviousRecord =
        "**Against the previous record** (2026-12-02 15:58 UTC, commit b5f7776, load not recorded): PUT → applied median 54.7 ms, local save 11.6 ms, 100 devices all applied 2.04 s after their PUTs and 3.61 s after connecting. Two runs on 2026-12-03 at load 30–35 and 19–21 gave 77 and 137 ms, 12 and 24 ms, 0.89 and 3.24 s, 2.46 and 2.75 s; this run at load 4 gave 12.5 ms, 1.8 ms, 0.33 s and 0.63 s, better than the old record on every figure (one a minute earlier, also at load 4: 12.1 ms, 1.3 ms, 0.23 s, 0.47 s). So the figures follow the machine's load, not the code; every one stays well within its target.";

    private const int Changes = 20;
    private const int Devices = 100;

    public string Name => "fleet";

    public string Description => "PUT-to-applied over the uplink (20 changes, one edge) and 100 simulated devices, beside a local save on the device";

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var run = RunRecord.Start(Name);
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-fleet-").FullName;
        try
        {
            var (remote, local) = await OneEdgeAsync(dir, cancellationToken);
            var (puts, connects) = await ManyDevicesAsync(dir, cancellationToken);
            var sb = new StringBuilder();
            sb.Append("## fleet — configuration pushed over the uplink\n\n");
            sb.Append(run.Line());
            sb.Append(CultureInfo.InvariantCulture, $"One `pinhole-edge` host (in process, real uplink client, supervisor and edge.json writes) and an in-process relay on loopback; {Changes} changes of the device's sensors, each a `PUT /api/devices/ID/config` timed until `GET /api/devices/ID` shows it applied (polled every 5 ms). Beside it, the same sections saved on the device itself (`EdgeConfigStore.SaveSectionsAsync`, what the local page does). Then {Devices} simulated devices (protocol-level clients) on one relay.\n\n");
            sb.Append("| measurement | median | p90 | max | target |\n|---|---|---|---|---|\n");
            sb.Append(Row("PUT → applied reported (relay, uplink, device)", remote, "< 2 s"));
            sb.Append(Row("the same change saved locally on the device", local, "—"));
            sb.Append('\n');
            sb.Append("| 100 devices | all applied after | slowest device | target |\n|---|---|---|---|\n");
            sb.Append(CultureInfo.InvariantCulture, $"| connected; one PUT each, sent together | {puts.All.TotalSeconds:0.00} s | {puts.Slowest.TotalMilliseconds:0} ms | all within 10 s |\n");
            sb.Append(CultureInfo.InvariantCulture, $"| a revision waiting for each; all connect at once | {connects.All.TotalSeconds:0.00} s | {connects.Slowest.TotalMilliseconds:0} ms | all within 10 s |\n");
            sb.Append('\n');
            sb.Append(CultureInfo.InvariantCulture, $"Measured on {Environment.ProcessorCount} cores shared with other builds; the connect figure includes each device's token check (PBKDF2, 20,000 iterations).\n");
            sb.Append('\n').Append(PreviousRecord).Append('\n');
            return sb.ToString();
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static string Row(string what, IReadOnlyList<TimeSpan> samples, string target)
    {
        var sorted = samples.Order().ToList();
        string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms";
        return $"| {what} | {Ms(sorted[sorted.Count / 2])} | {Ms(sorted[(int)(sorted.Count * 0.9)])} | {Ms(sorted[^1])} | {target} |\n";
    }

    private static async Task<(List<TimeSpan> Remote, List<TimeSpan> Local)> OneEdgeAsync(string dir, CancellationToken ct)
    {
        const string device = "bench";
        const string token = "a-long-random-secret-for-bench";
        await using var relay = await RelayApp.StartAsync(new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = Path.Combine(dir, "relay"),
            Devices = [new DeviceConfig { Id = device, Token = token }],
        }, b => b.Logging.SetMinimumLevel(LogLevel.Warning), ct);
        var apiToken = ApiTokens.Create(relay.Services.GetRequiredService<IFleetStore>(), "bench", DateTimeOffset.UtcNow);
        using var http = new HttpClient { BaseAddress = relay.HttpUri };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiToken);

        var sensorFile = Path.Combine(dir, "temp");
        await File.WriteAllTextAsync(sensorFile, "21500\n", ct);
        var edgeConfig = Path.Combine(dir, "edge.json");
        await File.WriteAllTextAsync(edgeConfig, $$"""
            { "deviceId": "{{device}}", "token": "{{token}}", "relays": [ "{{relay.UplinkUri}}" ],
              "web": { "listen": "http://127.0.0.1:0" }, "dataDir": "{{Path.Combine(dir, "edge-data")}}" }
            """, ct);
        var loaded = EdgeConfigLoader.LoadFile(edgeConfig);
        if (!loaded.IsValid) throw new InvalidOperationException(string.Join("; ", loaded.Problems));
        await using var edge = EdgeApp.Build(new EdgeHostOptions { ConfigPath = edgeConfig, Config = loaded.Config!, LogLevel = LogLevel.Warning });
        await edge.StartAsync(ct);
        try
        {
            await WaitAsync(http, device, d => d["online"]!.GetValue<bool>(), TimeSpan.FromSeconds(30), ct);
            string Document(int i) => $$"""{ "sensors": [ { "name": "t{{i}}", "kind": "file", "path": "{{sensorFile}}", "scale": 0.001, "interval": "1s" } ] }""";

            var remote = new List<TimeSpan>();
            for (var i = 1; i <= Changes; i++)
            {
                var clock = Stopwatch.StartNew();
                var response = await http.PutAsync(new Uri($"/api/devices/{device}/config", UriKind.Relative), new StringContent(Document(i), Encoding.UTF8, "application/json"), ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"PUT refused: {body}");
                var revision = JsonNode.Parse(body)!["revision"]!.GetValue<long>();
                await WaitAsync(http, device, d => d["reportedRevision"]?.GetValue<long>() == revision && d["reportedOutcome"]?.GetValue<string>() == "applied",
                    TimeSpan.FromSeconds(30), ct);
                remote.Add(clock.Elapsed);
                Console.WriteLine($"  change {i}: applied after {clock.Elapsed.TotalMilliseconds:0.0} ms");
            }

            var store = edge.Services.GetRequiredService<EdgeConfigStore>();
            var local = new List<TimeSpan>();
            for (var i = 1; i <= Changes; i++)
            {
                var sections = (JsonObject)JsonNode.Parse(Document(100 + i))!;
                var clock = Stopwatch.StartNew();
                var saved = await store.SaveSectionsAsync(sections);
                local.Add(clock.Elapsed);
                if (!saved.Saved) throw new InvalidOperationException(string.Join("; ", saved.Problems));
            }
            return (remote, local);
        }
        finally
        {
            await edge.StopAsync(CancellationToken.None);
        }
    }

    private static async Task WaitAsync(HttpClient http, string device, Func<JsonNode, bool> condition, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var d = JsonNode.Parse(await http.GetStringAsync(new Uri($"/api/devices/{device}", UriKind.Relative), ct))!;
            if (condition(d)) return;
            if (deadline.Elapsed > timeout) throw new TimeoutException($"device state not reached: {d.ToJsonString()}");
            await Task.Delay(5, ct);
        }
    }

    private sealed record Spread(TimeSpan All, TimeSpan Slowest);

    private static async Task<(Spread Puts, Spread Connects)> ManyDevicesAsync(string dir, CancellationToken ct)
    {
        var ids = Enumerable.Range(1, Devices).Select(i => $"sim{i:000}").ToList();
        await using var relay = await RelayApp.StartAsync(new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = Path.Combine(dir, "relay-many"),
            Devices = [.. ids.Select(id => new DeviceConfig { Id = id, Token = "token-of-" + id + "-0123456789" })],
            // Every simulated device connects from 127.0.0.1, as devices behind one balancer would.
            Limits = new LimitsConfig { HttpConnectionsPerAddress = 0 },
        }, b => b.Logging.SetMinimumLevel(LogLevel.Warning), ct);
        var apiToken = ApiTokens.Create(relay.Services.GetRequiredService<IFleetStore>(), "bench", DateTimeOffset.UtcNow);
        using var http = new HttpClient { BaseAddress = relay.HttpUri };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiToken);
        const string document = """{ "cameras": [ { "name": "door", "source": "rtsp://10.0.0.1/stream" } ] }""";

        // 1. All connected, then one PUT each, sent together.
        var devices = ids.Select(id => new SimulatedDevice(relay.UplinkUri, id)).ToList();
        try
        {
            await Task.WhenAll(devices.Select(d => d.ConnectAsync(ct)));
            var clock = Stopwatch.StartNew();
            var puts = ids.Select(async id =>
            {
                var r = await http.PutAsync(new Uri($"/api/devices/{id}/config", UriKind.Relative), new StringContent(document, Encoding.UTF8, "application/json"), ct);
                r.EnsureSuccessStatusCode();
            });
            await Task.WhenAll(puts);
            var applied = await Task.WhenAll(devices.Select(d => d.WaitForRevisionAsync(1, clock, ct)));
            var store = relay.Services.GetRequiredService<IFleetStore>();
            await WaitUntilAsync(() => ids.All(id => store.GetDeviceRecord(id)?.ReportedRevision == 1), ct);
            var putSpread = new Spread(clock.Elapsed, applied.Max());
            Console.WriteLine($"  {Devices} connected devices, one PUT each: all applied after {putSpread.All.TotalSeconds:0.00} s");
            foreach (var d in devices) await d.DisposeAsync();

            // 2. A revision waiting for each, then all connect at once (the relay resyncs on connect).
            await Task.WhenAll(ids.Select(async id =>
            {
                var r = await http.PutAsync(new Uri($"/api/devices/{id}/config", UriKind.Relative), new StringContent(document, Encoding.UTF8, "application/json"), ct);
                r.EnsureSuccessStatusCode();
            }));
            devices = [.. ids.Select(id => new SimulatedDevice(relay.UplinkUri, id))];
            clock = Stopwatch.StartNew();
            var connected = await Task.WhenAll(devices.Select(async d =>
            {
                await d.ConnectAsync(ct);
                return await d.WaitForRevisionAsync(2, clock, ct);
            }));
            await WaitUntilAsync(() => ids.All(id => store.GetDeviceRecord(id)?.ReportedRevision == 2), ct);
            var connectSpread = new Spread(clock.Elapsed, connected.Max());
            Console.WriteLine($"  {Devices} devices connecting at once with a revision waiting: all applied after {connectSpread.All.TotalSeconds:0.00} s");
            return (putSpread, connectSpread);
        }
        finally
        {
            foreach (var d in devices) await d.DisposeAsync();
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException("the relay did not record every report");
            await Task.Delay(5, ct);
        }
    }

    /// <summary>A device reduced to the protocol: hello with the data channel, then "applied" for every ConfigPush.</summary>
    private sealed class SimulatedDevice(Uri relay, string id) : IAsyncDisposable
    {
        private readonly ClientWebSocket _socket = new();
        private readonly SemaphoreSlim _send = new(1, 1);
        private readonly CancellationTokenSource _stop = new();
        private long _revision;
        private Task _receive = Task.CompletedTask;
        private TaskCompletionSource _revisionSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task ConnectAsync(CancellationToken ct)
        {
            _socket.Options.SetRequestHeader(UplinkProtocol.DeviceHeader, id);
            _socket.Options.SetRequestHeader("Authorization", "Bearer token-of-" + id + "-0123456789");
            _socket.Options.KeepAliveInterval = TimeSpan.Zero;
            await _socket.ConnectAsync(relay, ct);
            await SendAsync(new Hello(1, 1, UplinkCapabilities.Media | UplinkCapabilities.Data, "simulated/1"), ct);
            _receive = Task.Run(() => ReceiveAsync(_stop.Token), CancellationToken.None);
        }

        public async Task<TimeSpan> WaitForRevisionAsync(long revision, Stopwatch clock, CancellationToken ct)
        {
            while (Interlocked.Read(ref _revision) < revision)
            {
                var seen = _revisionSeen.Task;
                if (Interlocked.Read(ref _revision) >= revision) break;
                await seen.WaitAsync(TimeSpan.FromSeconds(60), ct);
            }
            return clock.Elapsed;
        }

        private async Task SendAsync(UplinkMessage message, CancellationToken ct)
        {
            await _send.WaitAsync(ct);
            try
            {
                await _socket.SendAsync(UplinkCodec.Encode(message), WebSocketMessageType.Binary, true, ct);
            }
            finally
            {
                _send.Release();
            }
        }

        private async Task ReceiveAsync(CancellationToken ct)
        {
            var buffer = new byte[1 << 20];
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    var filled = 0;
                    ValueWebSocketReceiveResult r;
                    do
                    {
                        r = await _socket.ReceiveAsync(buffer.AsMemory(filled), ct);
                        filled += r.Count;
                    } while (!r.EndOfMessage);
                    if (r.MessageType == WebSocketMessageType.Close) return;
                    switch (UplinkCodec.ParseOne(buffer.AsMemory(0, filled), UplinkLimits.Default))
                    {
                        case Ping ping:
                            await SendAsync(new Pong(ping.Timestamp), ct);
                            break;
                        case ConfigPush push:
                            await SendAsync(new ConfigReport(push.Revision, ConfigOutcome.Applied, ""), ct);
                            Interlocked.Exchange(ref _revision, (long)push.Revision);
                            Interlocked.Exchange(ref _revisionSeen, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                            break;
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _socket.Abort();
            await _receive;
            _socket.Dispose();
        }
    }
}
