using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.EdgeHost.Telemetry.Outbox;
using System.Diagnostics.Metrics;

namespace Pinhole.Benchmarks.Mqtt;

/// <summary>
/// Publish throughput of MQTTnet (what the edge uses) and of the edge's whole path (disk outbox, then MQTTnet) beside MQTT.js and mosquitto_pub, all against one local Mosquitto.
/// 64-byte payloads; QoS 0 and QoS 1. The clock stops when the broker has everything (last PUBACK, or for
/// QoS 0 the PUBACK of a final QoS 1 message; mosquitto_pub: when it exits after a clean disconnect).
/// Each figure is the median of several runs. A program that prints numbers, never a timed test.
/// Message counts and runs can be changed with PINHOLE_BENCH_MQTT_QOS0, PINHOLE_BENCH_MQTT_QOS1 and
/// PINHOLE_BENCH_MQTT_RUNS.
/// </summary>
internal sealed class MqttPublishBenchmark : IBenchmark
{
    private const int PayloadSize = 64;
    private static string? _mqttJsVersion;

    public string Name => "mqtt";

    public string Description => "MQTT publish rate, QoS 0 and 1, 64-byte payloads, over WebSocket to Mosquitto; beside MQTT.js (ws) and mosquitto_pub (tcp)";

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var count0 = EnvInt("PINHOLE_BENCH_MQTT_QOS0", 100_000);
        var count1 = EnvInt("PINHOLE_BENCH_MQTT_QOS1", 20_000);
        var runs = EnvInt("PINHOLE_BENCH_MQTT_RUNS", 3);
        var root = FindRepositoryRoot();

        await using var broker = await BenchBroker.StartAsync();
        Console.WriteLine($"mosquitto {BenchBroker.Version()} on tcp :{broker.TcpPort} and ws :{broker.WebSocketPort}; {PayloadSize}-byte payloads; median of {runs} runs");

        // Warm up the JIT and the broker so the first measured run is not a cold start.
        await PinholeAsync(broker, MqttQualityOfServiceLevel.AtMostOnce, 20_000, webSocket: true, MqttProtocolVersion.V311);
        await PinholeAsync(broker, MqttQualityOfServiceLevel.AtLeastOnce, 20_000, webSocket: false, MqttProtocolVersion.V500);

        var rows = new List<Row>();
        foreach (var (qos, count) in new[] { (MqttQualityOfServiceLevel.AtMostOnce, count0), (MqttQualityOfServiceLevel.AtLeastOnce, count1) })
        {
            cancellationToken.ThrowIfCancellationRequested();
            var row = new Row((int)qos, count);
            row.Figures["MQTTnet (ws, 3.1.1)"] = await Median(runs, () => PinholeAsync(broker, qos, count, webSocket: true, MqttProtocolVersion.V311));
            row.Figures["MQTTnet (ws, 5.0)"] = await Median(runs, () => PinholeAsync(broker, qos, count, webSocket: true, MqttProtocolVersion.V500));
            row.Figures["MQTT.js (ws, 3.1.1)"] = await Median(runs, () => MqttJsAsync(root, broker, qos, count));
            row.Figures["Pinhole edge: outbox + MQTTnet (ws, 5.0)"] = qos == MqttQualityOfServiceLevel.AtLeastOnce ? await Median(runs, () => EdgeOutboxAsync(broker, count)) : null;
            row.Figures["MQTTnet (tcp, 3.1.1)"] = await Median(runs, () => PinholeAsync(broker, qos, count, webSocket: false, MqttProtocolVersion.V311));
            row.Figures["mosquitto_pub -l (tcp, 3.1.1)"] = await Median(runs, () => MosquittoPubAsync(broker, qos, count));
            rows.Add(row);
            Console.WriteLine($"QoS {(int)qos}, {count} messages:");
            foreach (var (name, rate) in row.Figures)
                Console.WriteLine($"  {name,-32} {Format(rate),14}");
        }

        return Markdown(rows, runs);
    }

    private static async Task<double?> PinholeAsync(BenchBroker broker, MqttQualityOfServiceLevel qos, int count, bool webSocket, MqttProtocolVersion version)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithClientId("pinhole-bench-" + Environment.ProcessId).WithProtocolVersion(version).WithKeepAlivePeriod(TimeSpan.FromSeconds(60));
        options = webSocket
            ? options.WithWebSocketServer(o => o.WithUri($"ws://127.0.0.1:{broker.WebSocketPort}/mqtt"))
            : options.WithTcpServer("127.0.0.1", broker.TcpPort);
        await client.ConnectAsync(options.Build());
        var payload = new byte[PayloadSize];
        Array.Fill(payload, (byte)'a');
        var message = new MqttApplicationMessageBuilder().WithTopic("bench/pinhole").WithPayload(payload).WithQualityOfServiceLevel(qos).Build();

        var sw = Stopwatch.StartNew();
        if (qos == MqttQualityOfServiceLevel.AtMostOnce)
        {
            // One producer; PublishAsync returns once the message is written.
            for (var i = 0; i < count; i++)
                await client.PublishAsync(message);
            var barrier = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("bench/pinhole").WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            if (!barrier.IsSuccess)
                throw new InvalidOperationException(barrier.ReasonCode.ToString());
        }
        else
        {
            // As MQTT.js is driven: everything handed over at once. MQTTnet has no in-flight window of
            // its own, so Mosquitto's receive maximum (20 in flight on 5.0) is kept here, as the edge does.
            using var window = new SemaphoreSlim(version == MqttProtocolVersion.V500 ? 20 : 100);
            var tasks = new Task<MqttClientPublishResult>[count];
            for (var i = 0; i < count; i++)
            {
                await window.WaitAsync();
                tasks[i] = PublishReleasing(client, message, window);
            }
            foreach (var r in await Task.WhenAll(tasks))
            {
                if (!r.IsSuccess)
                    throw new InvalidOperationException(r.ReasonCode.ToString());
            }
        }

        var seconds = sw.Elapsed.TotalSeconds;
        await client.DisconnectAsync();
        return count / seconds;
    }

    private static async Task<MqttClientPublishResult> PublishReleasing(IMqttClient client, MqttApplicationMessage message, SemaphoreSlim window)
    {
        try
        {
            return await client.PublishAsync(message);
        }
        finally
        {
            window.Release();
        }
    }

    /// <summary>
    /// The edge's telemetry path: readings already in the disk outbox drained by the telemetry session at QoS 1
    /// over MQTTnet (16 in flight, in order), each removed only on its PUBACK. The clock runs from the session's
    /// start (connect included) until the outbox is empty.
    /// </summary>
    private static async Task<double?> EdgeOutboxAsync(BenchBroker broker, int count)
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-outbox-");
        try
        {
            await using var outbox = TelemetryOutbox.Open(dir.FullName);
            var topics = new TelemetryTopics("bench", "gw1");
            var options = new TelemetryConnectOptions(new Uri($"ws://127.0.0.1:{broker.WebSocketPort}/mqtt"), "pinhole-bench-edge-" + Environment.ProcessId,
                null, null, topics.Status, "offline", TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), null);
            var session = new MqttTelemetrySession(new MqttNetConnector(NullLoggerFactory.Instance, TimeProvider.System), options, topics,
                [("bench", "")], outbox, new TelemetryCounters(new Meter("bench")), TimeProvider.System, NullLogger.Instance);
            // Filled first (appends are fsync'd, group-committed; not what this measures), then drained.
            var now = DateTimeOffset.UtcNow;
            await Task.WhenAll(Enumerable.Range(0, count).Select(i => outbox.AppendAsync("bench", new SensorReading(i, "", now))));
            using var stop = new CancellationTokenSource();
            var sw = Stopwatch.StartNew();
            var running = session.RunAsync(new BenchPipelineContext(), stop.Token);
            while (outbox.PendingCount > 0)
            {
                if (running.IsCompleted)
                    await running; // surfaces the failure
                await Task.Delay(5);
            }
            var seconds = sw.Elapsed.TotalSeconds;
            await stop.CancelAsync();
            try { await running; } catch (OperationCanceledException) { }
            return count / seconds;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private sealed class BenchPipelineContext : IPipelineContext
    {
        public void Heartbeat() { }

        public void SetStatus(string status) { }
    }

    private static async Task<double?> MqttJsAsync(string root, BenchBroker broker, MqttQualityOfServiceLevel qos, int count)
    {
        var dir = Path.Combine(root, "bench", "mqtt-js");
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "mqtt")))
        {
            Console.Error.WriteLine($"MQTT.js skipped: run `npm ci` in {dir}");
            return null;
        }

        var output = await RunAsync("node", [Path.Combine(dir, "publish.js"), $"ws://127.0.0.1:{broker.WebSocketPort}/mqtt", ((int)qos).ToString(CultureInfo.InvariantCulture), count.ToString(CultureInfo.InvariantCulture), PayloadSize.ToString(CultureInfo.InvariantCulture), "bench/mqttjs"], null, dir);
        if (output is null)
            return null;
        using var json = JsonDocument.Parse(output.Trim().Split('\n')[^1]);
        _mqttJsVersion = json.RootElement.GetProperty("version").GetString();
        return count / json.RootElement.GetProperty("seconds").GetDouble();
    }

    private static async Task<double?> MosquittoPubAsync(BenchBroker broker, MqttQualityOfServiceLevel qos, int count)
    {
        var line = new string('a', PayloadSize);
        var input = new StringBuilder(count * (PayloadSize + 1));
        for (var i = 0; i < count; i++)
            input.Append(line).Append('\n');
        var sw = Stopwatch.StartNew();
        var output = await RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", broker.TcpPort.ToString(CultureInfo.InvariantCulture), "-t", "bench/mosquitto_pub", "-q", ((int)qos).ToString(CultureInfo.InvariantCulture), "-l"], input.ToString(), null);
        return output is null ? null : count / sw.Elapsed.TotalSeconds;
    }

    private static async Task<string?> RunAsync(string program, string[] args, string? stdin, string? workingDirectory)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        if (workingDirectory is not null)
            psi.WorkingDirectory = workingDirectory;
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.Error.WriteLine($"{program} skipped: {e.Message}");
            return null;
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (stdin is not null)
            {
                await process.StandardInput.WriteAsync(stdin);
                process.StandardInput.Close();
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await process.WaitForExitAsync(timeout.Token);
            if (process.ExitCode != 0)
            {
                Console.Error.WriteLine($"{program} failed ({process.ExitCode}): {await stderr}");
                return null;
            }

            return await stdout;
        }
    }

    private static async Task<double?> Median(int runs, Func<Task<double?>> run)
    {
        var results = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            if (await run() is not { } rate)
                return null;
            results.Add(rate);
        }

        results.Sort();
        return results[results.Count / 2];
    }

    private static string Format(double? rate) => rate is { } r ? r.ToString("N0", CultureInfo.InvariantCulture) + " msg/s" : "n/a";

    private static string Markdown(List<Row> rows, int runs)
    {
        var names = rows[0].Figures.Keys.ToList();
        var sb = new StringBuilder();
        sb.AppendLine("## MQTT publish throughput");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"`./build.sh bench` (or `dotnet run --project bench/Pinhole.Benchmarks -c Release -- --out docs/benchmarks.md mqtt`) on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores (shared), mosquitto {BenchBroker.Version()}, MQTT.js {_mqttJsVersion ?? "n/a"}, .NET {Environment.Version}.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"{PayloadSize}-byte payloads to one local Mosquitto; messages per second until the broker has them all (last PUBACK; for QoS 0, the PUBACK of a final QoS 1 message; mosquitto_pub: until it exits). Median of {runs} runs.");
        sb.AppendLine("MQTTnet columns: the library the edge uses, driven as MQTT.js is (everything handed over at once; 20 in flight on 5.0, Mosquitto's receive maximum). "
            + "\"Pinhole edge\": the product's own path, readings already in the disk outbox drained by the telemetry session (16 in flight, in order, each removed only on its PUBACK), connect included. "
            + "The target is at least MQTT.js's rate. Figures from a loaded machine are lower for every column alike: compare within a row.");
        sb.AppendLine();
        sb.AppendLine("| QoS | messages | " + string.Join(" | ", names) + " |");
        sb.AppendLine("|---|---|" + string.Concat(names.Select(_ => "---:|")));
        foreach (var row in rows)
            sb.Append(CultureInfo.InvariantCulture, $"| {row.Qos} | {row.Count:N0} | ").AppendJoin(" | ", names.Select(n => Format(row.Figures[n]))).AppendLine(" |");
        return sb.ToString();
    }

    private static string FindRepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Edge.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;

    private sealed record Row(int Qos, int Count)
    {
        public Dictionary<string, double?> Figures { get; } = [];
    }

    /// <summary>A throwaway Mosquitto on free loopback ports (TCP and WebSocket), default settings otherwise.</summary>
    private sealed class BenchBroker : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _dir;

        private BenchBroker(Process process, string dir, int tcp, int ws)
        {
            _process = process;
            _dir = dir;
            TcpPort = tcp;
            WebSocketPort = ws;
        }

        public int TcpPort { get; }

        public int WebSocketPort { get; }

        public static string Version()
        {
            var psi = new ProcessStartInfo("/usr/sbin/mosquitto", "-h") { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            var first = p.StandardOutput.ReadLine() ?? "";
            p.WaitForExit();
            return first.Replace("mosquitto version ", "", StringComparison.Ordinal).Trim();
        }

        public static async Task<BenchBroker> StartAsync()
        {
            var dir = Path.Combine(Path.GetTempPath(), "pinhole-bench-mosquitto-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(dir);
            int tcp = FreePort(), ws = FreePort();
            var conf = Path.Combine(dir, "mosquitto.conf");
            await File.WriteAllTextAsync(conf, $"""
                allow_anonymous true
                log_type error
                listener {tcp} 127.0.0.1
                listener {ws} 127.0.0.1
                protocol websockets
                """);
            var psi = new ProcessStartInfo("/usr/sbin/mosquitto") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(conf);
            var process = Process.Start(psi)!;
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var broker = new BenchBroker(process, dir, tcp, ws);
            foreach (var port in new[] { tcp, ws })
            {
                for (var i = 0; ; i++)
                {
                    try
                    {
                        using var probe = new TcpClient();
                        await probe.ConnectAsync(IPAddress.Loopback, port);
                        break;
                    }
                    catch (SocketException) when (i < 200)
                    {
                        await Task.Delay(25);
                    }
                }
            }

            return broker;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }
}
