using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Telemetry;

namespace Pinhole.Relay.Tests.Telemetry;

/// <summary>
/// The Grafana recipes of docs/telemetry.md, called the way Grafana calls them, against an in-process relay
/// with telemetry on (the broker is absent; readings go straight into its store):
/// the Infinity data source (JSON and CSV) on the history endpoint with Grafana's <c>${__from}</c>/<c>${__to}</c>
/// (Unix milliseconds) and a bearer token from <c>pinhole-relay tokens add grafana</c>, and a Prometheus
/// scrape of <c>/metrics</c> with the same token.
/// </summary>
public sealed class GrafanaDataSourceTests : IAsyncLifetime
{
    // The query URL of the Infinity recipe in docs/telemetry.md, with RELAY left for the test's relay.
    private const string InfinityUrl = "/api/devices/gw1/sensors/cpu_temp/history?from=${__from}&to=${__to}&points=1000";

    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-grafana-").FullName;
    private readonly List<TelemetryReading> _stored = [];
    private RelayApp _relay = null!;
    private string _token = "";
    private DateTimeOffset _to;

    public async Task InitializeAsync()
    {
        var config = new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = _dir,
            Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
            Viewers = [new ViewerConfig { User = "alice", Password = "alice-pass" }],
            // Port 9 (discard) on loopback: nothing answers, the ingest keeps retrying in the background.
            Telemetry = new TelemetryConfig { Mqtt = "ws://127.0.0.1:9/mqtt", ClientId = "grafana-test" },
        };
        _relay = await RelayApp.StartAsync(config);
        _token = ApiTokens.Create(_relay.Services.GetRequiredService<IFleetStore>(), "grafana", DateTimeOffset.UtcNow);

        // Two hours and ten minutes of cpu_temp, one reading a second, ending on a 2-minute boundary.
        var now = DateTimeOffset.UtcNow;
        _to = DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds() / 120_000 * 120_000);
        var start = _to - TimeSpan.FromMinutes(130);
        for (var i = 0; start.AddSeconds(i) < _to; i++)
            _stored.Add(new TelemetryReading("gw1", "cpu_temp", i + 1, start.AddSeconds(i), 40 + i % 37 * 0.25, "°C"));
        var fresh = _relay.Services.GetRequiredService<ITelemetryStore>().Store(_stored, now);
        Assert.Equal(_stored.Count, fresh.Count);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    // What Grafana does with the panel's time range: ${__from} and ${__to} become Unix milliseconds.
    private static string Interpolate(string template, DateTimeOffset from, DateTimeOffset to) => template
        .Replace("${__from}", from.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("${__to}", to.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    // Infinity's backend parser sends the data source's header and asks for anything.
    private HttpRequestMessage GrafanaRequest(string url, string? bearer)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_relay.HttpUri, url));
        request.Headers.UserAgent.ParseAdd("Grafana/11.3.0");
        request.Headers.Accept.ParseAdd("*/*");
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return request;
    }

    [Fact]
    public async Task Infinity_json_recipe_gets_min_max_avg_buckets_of_the_panel_range_with_a_bearer_token()
    {
        var from = _to - TimeSpan.FromHours(2);
        using var http = new HttpClient();
        using var response = await http.SendAsync(GrafanaRequest(Interpolate(InfinityUrl, from, _to), _token));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);

        // The recipe: rows/root "points", columns ts (timestamp), avg, min, max.
        var json = JsonNode.Parse(body)!;
        var points = json["points"]!.AsArray();
        var bucket = TimeSpan.FromMilliseconds(json["bucketMs"]!.GetValue<long>());
        // 7,200 readings in the range, at most 1000 points: several readings per bucket.
        Assert.InRange(points.Count, 900, 1000);
        Assert.True(bucket > TimeSpan.FromSeconds(5), $"bucket {bucket}");
        var previous = DateTimeOffset.MinValue;
        long total = 0;
        foreach (var p in points)
        {
            var ts = DateTimeOffset.ParseExact(p!["ts"]!.GetValue<string>(), "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            Assert.True(ts > previous, "points in time order");
            // Buckets are aligned to multiples of their width, so the first may start a little before `from`.
            Assert.True(ts > from - bucket && ts < _to, $"point at {ts:o} outside the panel's range");
            previous = ts;
            // Each bucket is exactly the readings of the range taken in [ts, ts + bucket).
            var inBucket = _stored.Where(r => r.Timestamp >= ts && r.Timestamp < ts + bucket && r.Timestamp >= from && r.Timestamp < _to).Select(r => r.Value).ToList();
            Assert.NotEmpty(inBucket);
            Assert.Equal(inBucket.Min(), p["min"]!.GetValue<double>());
            Assert.Equal(inBucket.Max(), p["max"]!.GetValue<double>());
            Assert.Equal(inBucket.Average(), p["avg"]!.GetValue<double>(), 9);
            Assert.Equal(inBucket.Count, p["count"]!.GetValue<long>());
            total += inBucket.Count;
        }
        // Every reading of the range is in exactly one bucket; the ten minutes before `from` are not.
        Assert.Equal(_stored.Count(r => r.Timestamp >= from && r.Timestamp < _to), total);
        Assert.Equal("°C", json["unit"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infinity_csv_recipe_gets_the_same_buckets_as_csv()
    {
        var from = _to - TimeSpan.FromHours(2);
        using var http = new HttpClient();
        using var jsonResponse = await http.SendAsync(GrafanaRequest(Interpolate(InfinityUrl, from, _to), _token));
        var json = JsonNode.Parse(await jsonResponse.Content.ReadAsStringAsync())!["points"]!.AsArray();
        using var response = await http.SendAsync(GrafanaRequest(Interpolate(InfinityUrl + "&format=csv", from, _to), _token));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {body}");
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        var lines = body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("ts,min,max,avg,count", lines[0]);
        Assert.Equal(json.Count, lines.Length - 1);
        for (var i = 0; i < json.Count; i++)
        {
            var cells = lines[i + 1].Split(',');
            Assert.Equal(json[i]!["ts"]!.GetValue<string>(), cells[0]);
            Assert.Equal(json[i]!["min"]!.GetValue<double>(), double.Parse(cells[1], CultureInfo.InvariantCulture));
            Assert.Equal(json[i]!["max"]!.GetValue<double>(), double.Parse(cells[2], CultureInfo.InvariantCulture));
            Assert.Equal(json[i]!["avg"]!.GetValue<double>(), double.Parse(cells[3], CultureInfo.InvariantCulture));
            Assert.Equal(json[i]!["count"]!.GetValue<long>(), long.Parse(cells[4], CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public async Task Infinity_recipe_without_the_token_or_with_a_wrong_one_gets_401_and_no_data()
    {
        var url = Interpolate(InfinityUrl, _to - TimeSpan.FromHours(2), _to);
        using var http = new HttpClient();
        foreach (var bearer in new[] { null, "pht_not-a-token", _token + "x" })
        {
            using var response = await http.SendAsync(GrafanaRequest(url, bearer));
            var body = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Null(JsonNode.Parse(body)!["points"]);
            Assert.Contains("Bearer", JsonNode.Parse(body)!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Prometheus_scrape_of_metrics_with_the_token_gets_each_sensors_latest_value()
    {
        using var http = new HttpClient();
        // Prometheus's scrape request: Accept lists the text format, authorization from its scrape config.
        using var scrape = GrafanaRequest("/metrics", _token);
        scrape.Headers.UserAgent.Clear();
        scrape.Headers.UserAgent.ParseAdd("Prometheus/2.42.0");
        scrape.Headers.Accept.Clear();
        scrape.Headers.Accept.ParseAdd("text/plain;version=0.0.4;q=0.5");
        using var response = await http.SendAsync(scrape);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {body}");
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var last = _stored[^1];
        var labels = "{device=\"gw1\",sensor=\"cpu_temp\",unit=\"°C\"}";
        Assert.Contains("# TYPE pinhole_sensor_value gauge\n", body, StringComparison.Ordinal);
        Assert.Contains($"pinhole_sensor_value{labels} {last.Value.ToString("R", CultureInfo.InvariantCulture)}\n", body, StringComparison.Ordinal);
        var stamp = body.Split('\n').Single(l => l.StartsWith($"pinhole_sensor_timestamp_seconds{labels} ", StringComparison.Ordinal));
        Assert.Equal(last.Timestamp.ToUnixTimeMilliseconds() / 1000.0, double.Parse(stamp.Split(' ')[^1], CultureInfo.InvariantCulture), 3);

        using var anonymous = await http.SendAsync(GrafanaRequest("/metrics", null));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }
}
