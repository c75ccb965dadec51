using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Telemetry;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Telemetry;

/// <summary>
/// Issue 14's year test through HTTP, not only the store: a year of one-a-minute readings in the relay's store,
/// then <c>GET …/history?points=2000</c> for the whole year, as the dashboard's 1-year range asks it.
/// </summary>
public sealed class TelemetryApiYearTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-year-").FullName;
    private RelayApp _relay = null!;

    public async Task InitializeAsync()
    {
        var config = new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = _dir,
            Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
            // Nothing answers on the discard port: readings go straight into the store. Raw readings are kept
            // 400 days so that a year can be loaded at all (the default keeps 7 days and refuses older ones).
            Telemetry = new TelemetryConfig
            {
                Mqtt = "ws://127.0.0.1:9/mqtt",
                ClientId = "year-test",
                RawRetention = TimeSpan.FromDays(400),
                MinuteRetention = TimeSpan.FromDays(400),
            },
        };
        _relay = await RelayApp.StartAsync(config);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_one_year_chart_request_with_points_2000_answers_in_under_a_second_with_at_most_2000_points()
    {
        var store = _relay.Services.GetRequiredService<ITelemetryStore>();
        var now = DateTimeOffset.UtcNow;
        const int minutes = 365 * 24 * 60;
        var start = now.AddMinutes(-minutes);
        var load = Stopwatch.StartNew();
        for (var i = 0; i < minutes; i += 10_000)
            store.Store([.. Enumerable.Range(i, Math.Min(10_000, minutes - i)).Select(m => new TelemetryReading("gw1", "t", m + 1, start.AddMinutes(m), Math.Sin(m / 1440.0 * Math.PI * 2) * 10 + 20, "°C"))], now);
        output.WriteLine($"loaded {minutes} readings in {load.Elapsed.TotalSeconds:0.0} s");

        var token = ApiTokens.Create(_relay.Services.GetRequiredService<IFleetStore>(), "year", DateTimeOffset.UtcNow);
        using var http = new HttpClient { BaseAddress = _relay.HttpUri };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var url = string.Create(CultureInfo.InvariantCulture, $"/api/devices/gw1/sensors/t/history?from={start.ToUnixTimeMilliseconds()}&to={now.AddMinutes(1).ToUnixTimeMilliseconds()}&points=2000");
        // The first request pays for JIT and opening the reader; the dashboard's is never the relay's first.
        var first = Stopwatch.StartNew();
        using (var warm = await http.GetAsync(new Uri(url, UriKind.Relative))) Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        output.WriteLine($"first request (with JIT): {first.Elapsed.TotalMilliseconds:0} ms");

        var clock = Stopwatch.StartNew();
        using var response = await http.GetAsync(new Uri(url, UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        clock.Stop();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {body}");
        var json = JsonNode.Parse(body)!;
        var points = json["points"]!.AsArray();
        output.WriteLine($"1-year chart over HTTP: {points.Count} points from the {json["tier"]} tier in {clock.Elapsed.TotalMilliseconds:0} ms ({body.Length} bytes)");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the 1-year request took {clock.Elapsed.TotalMilliseconds:0} ms");
        Assert.InRange(points.Count, 1000, 2000);
        Assert.Equal("1h", json["tier"]!.GetValue<string>());
        Assert.Equal(minutes, points.Sum(p => p!["count"]!.GetValue<long>()));
        Assert.InRange(points.Min(p => p!["min"]!.GetValue<double>()), 9.99, 10.01);
        Assert.InRange(points.Max(p => p!["max"]!.GetValue<double>()), 29.99, 30.01);
    }
}
