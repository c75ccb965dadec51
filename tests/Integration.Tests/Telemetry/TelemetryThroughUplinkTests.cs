using System.Diagnostics;
using System.Text.RegularExpressions;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Telemetry;

/// <summary>
/// Issue 18: behind a real HAProxy that deletes <c>Upgrade</c> (as in HttpFallbackTests), the edge's MQTT over WebSocket
/// to the broker cannot open, while its uplink falls back to HTTP. Telemetry then rides the uplink: the edge opens a
/// stream to the relay's <c>mqtt</c> service (the broker the relay ingests from), and its readings reach the broker and
/// the relay's history, every seq once, as a persistent QoS 1 <c>mosquitto_sub</c> saw them.
/// </summary>
[Collection(EndToEnd.EndToEnd.Collection)]
public sealed partial class TelemetryThroughUplinkTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"(?m)^pinhole_uplink_device_streams_total\{[^}]*service=""mqtt""[^}]*\} ([1-9][0-9]*)")]
    private static partial Regex MqttStreams();

    [RequiresFact(Needs.Mosquitto | Needs.HaProxy)]
    public async Task Behind_a_proxy_that_strips_Upgrade_readings_travel_through_the_uplink_to_the_broker_and_the_history()
    {
        await using var stack = await TelemetryHistoryStack.StartAsync(output);
        await using var proxy = await HaProxy.StartAsync(stack.HttpPort, stripUpgrade: true, onOutputLine: l => stack.Log("haproxy " + l));
        // Both the uplink and the broker's WebSocket are reached through the stripping proxy (which forwards to the relay,
        // where no broker answers /mqtt: what the device sees is what a WebSocket gets through such a proxy, no upgrade).
        await stack.StartEdgeAsync(relayUrl: $"ws://127.0.0.1:{proxy.Port}/uplink", mqttUrl: $"ws://127.0.0.1:{proxy.Port}/mqtt");
        using var edgeHttp = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{stack.WebPort}"), Timeout = TimeSpan.FromSeconds(10) };
        using var relayHttp = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{stack.HttpPort}"), Timeout = TimeSpan.FromSeconds(10) };

        // Connected through the uplink, and said so in the metrics.
        var clock = Stopwatch.StartNew();
        string edgeMetrics;
        while (!(edgeMetrics = await edgeHttp.GetStringAsync("/metrics")).Contains("pinhole_telemetry_route{route=\"uplink\"} 1", StringComparison.Ordinal))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "telemetry did not connect through the uplink\n" + edgeMetrics + "\n" + stack.Logs + "\n--- haproxy ---\n" + proxy.Log);
            await Task.Delay(500);
        }
        stack.Log($"telemetry through the uplink {clock.Elapsed.TotalSeconds:0.0} s after the edge started");
        Assert.Contains("pinhole_uplink_transport{transport=\"http\"} 1", edgeMetrics, StringComparison.Ordinal);
        Assert.Contains("pinhole_telemetry_route{route=\"direct\"} 0", edgeMetrics, StringComparison.Ordinal);
        Assert.Contains("carrying MQTT through the uplink", stack.Edge!.Output, StringComparison.Ordinal);
        Assert.Matches(MqttStreams(), await relayHttp.GetStringAsync("/metrics"));

        // Readings flow for a while, then every one the broker saw is in the relay's history, once.
        await Task.Delay(TimeSpan.FromSeconds(10));
        await stack.KillEdgeAsync();
        var (published, history) = await stack.WaitForHistoryToCatchUpAsync(TimeSpan.FromSeconds(60));
        stack.Log($"published through the uplink: {published.Count} readings, history holds {history.Count}");
        Assert.True(published.Count >= 20, $"only {published.Count} readings reached the broker in 10 s\n{stack.Logs}");
        var seqs = history.Select(h => h.Seq).ToHashSet();
        var missing = published.Keys.Where(k => !seqs.Contains(k)).Order().ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} readings the broker saw are not in the history: {string.Join(",", missing.Take(30))}\n{stack.Logs}");
        Assert.Equal(history.Count, seqs.Count);
    }
}
