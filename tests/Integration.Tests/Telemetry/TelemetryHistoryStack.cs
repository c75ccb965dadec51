using System.Globalization;
using System.Net;
using System.Net.Http;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pinhole.Integration.Tests.EndToEnd;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Telemetry;

/// <summary>One published reading as a persistent QoS 1 mosquitto_sub saw it: the truth the history is compared with.</summary>
internal sealed record PublishedReading(long Seq, string Ts, double Value);

/// <summary>
/// Mosquitto (persistent), a persistent QoS 1 <c>mosquitto_sub</c> recording what the edge published, the real
/// relay with <c>"telemetry"</c> (child process) and the real edge (child process) with a file sensor whose
/// value the test changes all the time.
/// </summary>
internal sealed partial class TelemetryHistoryStack : IAsyncDisposable
{
    public const string Sensor = "fast";
    private readonly ITestOutputHelper _output;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _subscriberOutputs = [];
    private readonly string? _database;
    private readonly IReadOnlyList<object> _alerts;
    private Task? _writer;
    private HttpClient? _http;

    private TelemetryHistoryStack(ITestOutputHelper output, MosquittoBroker broker, string? database, IReadOnlyList<object> alerts)
    {
        _output = output;
        Broker = broker;
        _database = database;
        _alerts = alerts;
        Dir = EndToEnd.EndToEnd.NewWorkDir("history");
        HttpPort = FreePort.Get();
        RtspPort = FreePort.Get();
        WebPort = FreePort.Get();
        SensorFile = Path.Combine(Dir, "sensor");
    }

    public MosquittoBroker Broker { get; }
    public string Dir { get; }
    public int HttpPort { get; }
    public int RtspPort { get; }
    public int WebPort { get; }
    public string SensorFile { get; }
    public PeerProcess? Relay { get; private set; }
    public PeerProcess? Edge { get; private set; }
    public PeerProcess? Subscriber { get; private set; }
    public Uri HttpUri => new($"http://127.0.0.1:{HttpPort}");

    /// <summary>The value the sensor file holds now (in thousandths; the edge scales by 0.001).</summary>
    public int RawValue { get; set; } = 20_000;

    /// <summary>When set, the file writer holds this raw value instead of cycling.</summary>
    public int? PinnedRawValue { get; set; }

    /// <summary>Starts the broker, subscriber and relay (waiting until the relay's ingest is subscribed); the edge is started with <see cref="StartEdgeAsync"/>.</summary>
    public static async Task<TelemetryHistoryStack> StartAsync(ITestOutputHelper output, string? database = null, IReadOnlyList<object>? alerts = null)
    {
        var broker = await MosquittoBroker.StartAsync(new MosquittoOptions { Persistence = true, ExtraConfig = ["max_queued_messages 0"] });
        var stack = new TelemetryHistoryStack(output, broker, database, alerts ?? []);
        try
        {
            await stack.StartSubscriberAsync();
            stack.StartSensorWriter();
            await stack.StartRelayAsync();
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    [GeneratedRegex("Telemetry ingest connected to")]
    private static partial Regex IngestConnected();

    public async Task StartRelayAsync()
    {
        var path = Path.Combine(Dir, "relay.json");
        var config = new Dictionary<string, object>
        {
            ["http"] = $"http://127.0.0.1:{HttpPort}",
            ["rtsp"] = $"127.0.0.1:{RtspPort}",
            ["dataDir"] = Path.Combine(Dir, "relay-data"),
            ["devices"] = new[] { new { id = EndToEnd.EndToEnd.Device, token = EndToEnd.EndToEnd.Token } },
            ["viewers"] = new[] { new { user = EndToEnd.EndToEnd.ViewerUser, password = EndToEnd.EndToEnd.ViewerPassword } },
            ["metrics"] = new { @public = true },
            ["telemetry"] = new Dictionary<string, object>
            {
                ["mqtt"] = Broker.WebSocketUrl.ToString(),
                ["clientId"] = "relay-history-" + Guid.NewGuid().ToString("N")[..8],
                ["alerts"] = _alerts,
            },
        };
        if (_database is not null) config["database"] = _database;
        File.WriteAllText(path, JsonSerializer.Serialize(config));
        Relay = await PeerProcess.StartAsync(EndToEnd.EndToEnd.RelayStartInfo(path, _output));
        await Relay.WaitForLineAsync(IngestConnected(), TimeSpan.FromSeconds(30));
    }

    /// <summary>Starts the edge; <paramref name="relayUrl"/> and <paramref name="mqttUrl"/> replace the relay's uplink
    /// and the broker's WebSocket URL (to put a proxy on the way).</summary>
    public async Task StartEdgeAsync(string? relayUrl = null, string? mqttUrl = null)
    {
        var path = Path.Combine(Dir, "edge.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new
        {
            deviceId = EndToEnd.EndToEnd.Device,
            token = EndToEnd.EndToEnd.Token,
            relays = new[] { relayUrl ?? $"ws://127.0.0.1:{HttpPort}/uplink" },
            sensors = new[] { new { name = Sensor, kind = "file", path = SensorFile, scale = 0.001, unit = "°C", interval = "100ms" } },
            mqtt = new { url = mqttUrl ?? Broker.WebSocketUrl.ToString(), topicPrefix = "pinhole" },
            web = new { listen = $"http://127.0.0.1:{WebPort}", password = "edge-page-password" },
            dataDir = Path.Combine(Dir, "edge-data"),
        }));
        Edge = await PeerProcess.StartAsync(EndToEnd.EndToEnd.EdgeStartInfo(path, WebPort, _output));
    }

    public async Task KillEdgeAsync()
    {
        if (Edge is null) return;
        Edge.Kill();
        await Edge.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await Edge.DisposeAsync();
        Edge = null;
    }

    // The sensor's file changes every 37 ms, so consecutive readings carry different values.
    private void StartSensorWriter()
    {
        File.WriteAllText(SensorFile, RawValue.ToString(CultureInfo.InvariantCulture) + "\n");
        _writer = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var value = PinnedRawValue ?? (RawValue = 20_000 + (RawValue - 20_000 + 137) % 10_000);
                var tmp = SensorFile + ".tmp";
                await File.WriteAllTextAsync(tmp, value.ToString(CultureInfo.InvariantCulture) + "\n");
                File.Move(tmp, SensorFile, overwrite: true);
                try { await Task.Delay(37, _stop.Token); }
                catch (OperationCanceledException) { break; }
            }
        });
    }

    // mosquitto_sub with a persistent session at QoS 1: it sees every reading the edge got acknowledged.
    private async Task StartSubscriberAsync()
    {
        Subscriber = PeerProcess.Start(SubscriberInfo());
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!Subscriber.Output.Contains("pinhole/gw1/sensors/probe ready", StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail(Subscriber.Describe("never received the probe"));
            await Broker.PublishAsync("pinhole/gw1/sensors/probe", "ready");
            await Task.Delay(200);
        }
    }

    private PeerStartInfo SubscriberInfo()
    {
        var args = new List<string> { "-oL", "mosquitto_sub" };
        args.AddRange(Broker.ClientArguments());
        args.AddRange(["-c", "-i", "history-truth-" + HttpPort.ToString(CultureInfo.InvariantCulture), "-q", "1", "-v", "-t", "pinhole/gw1/sensors/" + Sensor, "-t", "pinhole/gw1/sensors/probe"]);
        return new PeerStartInfo("stdbuf", args) { Name = "mosquitto_sub", OutputLines = 1_000_000 };
    }

    /// <summary>mosquitto_sub may exit when the broker stops; a new one with the same id resumes the session.</summary>
    public async Task EnsureSubscriberAsync()
    {
        if (Subscriber is not { HasExited: true }) return;
        _subscriberOutputs.Add(Subscriber.Output);
        await Subscriber.DisposeAsync();
        Subscriber = PeerProcess.Start(SubscriberInfo());
    }

    [GeneratedRegex("""^pinhole/gw1/sensors/fast (\{.*\})$""", RegexOptions.Multiline)]
    private static partial Regex FastLine();

    /// <summary>Every reading the subscriber saw, first sighting of each seq.</summary>
    public Dictionary<long, PublishedReading> Published()
    {
        var text = string.Join('\n', _subscriberOutputs.Append(Subscriber?.Output ?? ""));
        var map = new Dictionary<long, PublishedReading>();
        foreach (Match m in FastLine().Matches(text))
        {
            var json = JsonNode.Parse(m.Groups[1].Value)!;
            var r = new PublishedReading(json["seq"]!.GetValue<long>(), json["ts"]!.GetValue<string>(), json["value"]!.GetValue<double>());
            map.TryAdd(r.Seq, r);
        }
        return map;
    }

    public async Task<HttpClient> ApiAsync()
    {
        if (_http is not null) return _http;
        var cookies = new CookieContainer();
        var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies }) { BaseAddress = HttpUri };
        var login = await http.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", EndToEnd.EndToEnd.ViewerUser), new("password", EndToEnd.EndToEnd.ViewerPassword)]));
        // One relay answers a login with a 302 to the page asked for; with a shared (PostgreSQL) database the
        // relay answers 200 with a page that moves on by itself (docs/scale-out.md). Either way a session cookie is set.
        Assert.True(login.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.OK, $"login answered {(int)login.StatusCode}");
        Assert.Contains(cookies.GetCookies(HttpUri).Cast<Cookie>(), c => c.Name == "pinhole_session");
        return _http = http;
    }

    /// <summary>The raw history of the sensor over the last hour (every reading with its seq).</summary>
    public async Task<List<(long Seq, string Ts, double Value)>> RawHistoryAsync()
    {
        var http = await ApiAsync();
        var from = DateTime.UtcNow.AddHours(-1).ToString("o", CultureInfo.InvariantCulture);
        var to = DateTime.UtcNow.AddMinutes(5).ToString("o", CultureInfo.InvariantCulture);
        var json = JsonNode.Parse(await http.GetStringAsync(new Uri($"/api/devices/gw1/sensors/{Sensor}/history?from={Uri.EscapeDataString(from)}&to={Uri.EscapeDataString(to)}", UriKind.Relative)))!;
        return [.. json["points"]!.AsArray().Select(p => (p!["seq"]!.GetValue<long>(), p["ts"]!.GetValue<string>(), p["value"]!.GetValue<double>()))];
    }

    /// <summary>Waits until the history holds every seq the subscriber saw (or the timeout passes); returns both.</summary>
    public async Task<(Dictionary<long, PublishedReading> Published, List<(long Seq, string Ts, double Value)> History)> WaitForHistoryToCatchUpAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            await EnsureSubscriberAsync();
            var published = Published();
            var history = await RawHistoryAsync();
            var stored = history.Select(h => h.Seq).ToHashSet();
            if ((published.Count > 0 && published.Keys.All(stored.Contains)) || DateTime.UtcNow > deadline) return (published, history);
            await Task.Delay(500);
        }
    }

    public string Logs => EndToEnd.EndToEnd.Describe(Edge, Relay, Subscriber) + "\n--- broker ---\n" + Broker.Log;

    public void Log(string message)
    {
        try { _output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {message}"); }
        catch (InvalidOperationException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_writer is not null) await _writer;
        _http?.Dispose();
        if (Edge is not null) await Edge.DisposeAsync();
        if (Relay is not null) await Relay.DisposeAsync();
        if (Subscriber is not null) await Subscriber.DisposeAsync();
        await Broker.DisposeAsync();
        _stop.Dispose();
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
