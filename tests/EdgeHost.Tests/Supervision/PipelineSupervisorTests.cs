using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Tests.Support;
using System.Diagnostics.Metrics;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Supervision;

public class PipelineSupervisorTests
{
    private static readonly EdgeConfig Empty = EdgeConfigLoader.Parse("""{ "deviceId": "gw1", "token": "t", "relays": ["wss://r/u"] }""").Config!;

    private static SupervisorOptions Fast(double jitter = 0.1) => new()
    {
        TickInterval = TimeSpan.FromMilliseconds(50),
        InitialBackoff = TimeSpan.FromMilliseconds(200),
        MaxBackoff = TimeSpan.FromMilliseconds(1600),
        Jitter = jitter,
        HealthyRunResetsBackoff = TimeSpan.FromSeconds(30),
        StopGrace = TimeSpan.FromMilliseconds(300),
    };

    private static PipelineSupervisor Supervisor(SupervisorOptions options, Meter meter, params PipelineSpec[] specs) =>
        new([new FixedFactory(specs)], meter, TimeProvider.System, NullLogger<PipelineSupervisor>.Instance, options);

    private sealed class FixedFactory(PipelineSpec[] specs) : IPipelineFactory
    {
        public IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config) => specs;
    }

    private static PipelineSpec Spec(string name, TimeSpan stall, StartLog log, Func<IPipelineContext, CancellationToken, Task> body) =>
        new(name, "v1", () => new ScriptedPipeline(name, stall, log, body));

    [Fact]
    public async Task A_throwing_pipeline_is_restarted_forever_with_growing_capped_backoff_and_reported()
    {
        var log = new StartLog();
        using var metrics = new MeterProbe(new Meter("test"));
        await using var supervisor = Supervisor(Fast(), metrics.Meter,
            Spec("camera/door", Timeout.InfiniteTimeSpan, log, (_, _) => throw new InvalidOperationException("boom")));
        await supervisor.StartAsync(Empty);

        await EdgeTestHost.WaitUntilAsync(() => log.Count("camera/door") >= 6, TimeSpan.FromSeconds(15), "6 starts");
        var times = log.Times("camera/door");
        var gaps = times.Zip(times.Skip(1), (a, b) => (b - a).TotalMilliseconds).ToList();
        // Nominal 200, 400, 800, 1600, 1600 (cap) ms, each ±10 %. A delay is never shorter than its
        // jittered minimum (that proves the growth); scheduling on a busy machine only adds, so the
        // upper bounds carry slack, but tight enough that a constant or uncapped delay fails.
        double[] nominal = [200, 400, 800, 1600, 1600];
        var report = $"gaps {string.Join(", ", gaps.Select(g => (int)g))} ms";
        for (var i = 0; i < nominal.Length; i++)
        {
            Assert.True(gaps[i] >= nominal[i] * 0.9 - 15, report);
            Assert.True(gaps[i] <= nominal[i] * 1.1 + 350, report);
        }
        var snapshot = Assert.Single(supervisor.Snapshot());
        Assert.False(snapshot.Healthy);
        Assert.True(snapshot.Restarts >= 5, $"restarts {snapshot.Restarts}");
        Assert.Equal("threw InvalidOperationException: boom", snapshot.LastError);
        Assert.Contains("camera/door: restarting after: threw InvalidOperationException: boom", PipelineSupervisor.Summarize(supervisor.Snapshot()), StringComparison.Ordinal);
        Assert.Contains($"pinhole_pipeline_restarts_total{{pipeline=\"camera/door\"}} {snapshot.Restarts}", metrics.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stalled_pipeline_is_cancelled_and_restarted()
    {
        var log = new StartLog();
        var cancelled = 0;
        await using var supervisor = Supervisor(Fast(), new Meter("test"),
            Spec("sensor/t", TimeSpan.FromMilliseconds(300), log, async (ctx, ct) =>
            {
                ctx.Heartbeat();
                try { await Task.Delay(Timeout.Infinite, ct); }
                finally { Interlocked.Increment(ref cancelled); }
            }));
        await supervisor.StartAsync(Empty);

        await EdgeTestHost.WaitUntilAsync(() => log.Count("sensor/t") >= 2, TimeSpan.FromSeconds(10), "a restart");
        var times = log.Times("sensor/t");
        Assert.True((times[1] - times[0]).TotalMilliseconds >= 300 + 180, "restarted before the stall timeout plus backoff");
        Assert.True(Volatile.Read(ref cancelled) >= 1, "the stalled instance's token was not cancelled");
        var s = Assert.Single(supervisor.Snapshot());
        Assert.Equal("stalled: no heartbeat for 0.3s", s.LastError);
    }

    [Fact]
    public async Task A_pipeline_that_heartbeats_is_not_restarted_as_stalled()
    {
        var log = new StartLog();
        await using var supervisor = Supervisor(Fast(), new Meter("test"),
            Spec("uplink", TimeSpan.FromMilliseconds(1000), log, async (ctx, ct) =>
            {
                while (true) { ctx.Heartbeat(); await Task.Delay(50, ct); }
            }));
        await supervisor.StartAsync(Empty);
        await Task.Delay(2500);
        var s = Assert.Single(supervisor.Snapshot());
        Assert.True(log.Count("uplink") == 1, $"restarted: {s.LastError}");
        Assert.True(s.Healthy);
        Assert.Equal(PipelineState.Running, s.State);
        Assert.Equal(0, s.Restarts);
    }

    [Fact]
    public async Task A_stalled_pipeline_that_ignores_cancellation_is_abandoned_and_replaced()
    {
        var log = new StartLog();
        await using var supervisor = Supervisor(Fast(), new Meter("test"),
            Spec("camera/stuck", TimeSpan.FromMilliseconds(200), log, (_, _) => Task.Delay(Timeout.Infinite, CancellationToken.None)));
        await supervisor.StartAsync(Empty);
        await EdgeTestHost.WaitUntilAsync(() => log.Count("camera/stuck") >= 2, TimeSpan.FromSeconds(10), "a replacement");
    }

    [Fact]
    public async Task Returning_counts_as_a_failure()
    {
        var log = new StartLog();
        await using var supervisor = Supervisor(Fast(), new Meter("test"),
            Spec("mqtt", Timeout.InfiniteTimeSpan, log, (_, _) => Task.CompletedTask));
        await supervisor.StartAsync(Empty);
        await EdgeTestHost.WaitUntilAsync(() => log.Count("mqtt") >= 2, TimeSpan.FromSeconds(10), "a restart");
        Assert.Equal("returned without being asked to stop", supervisor.Snapshot()[0].LastError);
    }

    [Fact]
    public async Task The_backoff_starts_over_after_a_healthy_run()
    {
        var log = new StartLog();
        var options = Fast();
        options.HealthyRunResetsBackoff = TimeSpan.FromMilliseconds(500);
        var spec = Spec("camera/flaky", Timeout.InfiniteTimeSpan, log, async (_, ct) =>
        {
            // Starts 1-3 fail at once (backoff grows to 800 ms); start 4 runs healthily for 700 ms, then fails.
            if (log.Count("camera/flaky") == 4) await Task.Delay(700, ct);
            throw new IOException("connection reset");
        });
        // The delay the runner chose, read when it schedules each restart (exact, unlike wall-clock gaps).
        var delays = new System.Collections.Concurrent.ConcurrentQueue<double>();
        var runner = new PipelineRunner(spec, options, TimeProvider.System, NullLogger.Instance)
        {
            Restarted = r =>
            {
                var s = r.Snapshot();
                delays.Enqueue((s.NextStartAt!.Value - s.LastErrorAt!.Value).TotalMilliseconds);
            },
        };
        runner.Start();
        try
        {
            await EdgeTestHost.WaitUntilAsync(() => delays.Count >= 4, TimeSpan.FromSeconds(15), "4 restarts");
        }
        finally
        {
            await runner.StopAsync();
        }
        var d = delays.ToArray();
        Assert.InRange(d[0], 180, 220);
        Assert.InRange(d[1], 360, 440);
        Assert.InRange(d[2], 720, 880);
        Assert.InRange(d[3], 180, 220); // back to the start, not 1600 ms
    }

    [Fact]
    public void Backoff_is_jittered_within_bounds_and_capped()
    {
        var options = Fast(jitter: 0.2);
        var runner = new PipelineRunner(new PipelineSpec("x", "", () => throw new NotSupportedException()), options, TimeProvider.System, NullLogger.Instance);
        var first = Enumerable.Range(0, 200).Select(_ => runner.Backoff(1).TotalMilliseconds).ToList();
        Assert.All(first, ms => Assert.InRange(ms, 160, 240));
        Assert.True(first.Distinct().Count() > 50, "no jitter");
        Assert.All(Enumerable.Range(0, 200), _ => Assert.InRange(runner.Backoff(3).TotalMilliseconds, 640, 960));
        Assert.All(Enumerable.Range(0, 200), _ => Assert.InRange(runner.Backoff(100).TotalMilliseconds, 1280, 1600));
    }

    [Fact]
    public async Task Applying_a_config_restarts_only_changed_pipelines_adds_new_and_stops_removed()
    {
        var log = new StartLog();
        using var metrics = new MeterProbe(new Meter("test"));
        await using var supervisor = new PipelineSupervisor([new FakeFeatureFactory(log)], metrics.Meter, TimeProvider.System,
            NullLogger<PipelineSupervisor>.Instance, Fast());
        var before = EdgeConfigLoader.Parse(TempConfigDir.Sample(), "/tmp").Config!;
        await supervisor.StartAsync(before);
        string[] all = ["uplink", "camera/door", "camera/pi", "sensor/cpu_temp", "sensor/door_contact", "mqtt"];
        await EdgeTestHost.WaitUntilAsync(() => all.All(n => log.Count(n) == 1), TimeSpan.FromSeconds(10), "all started");
        Assert.Contains("pinhole_pipeline_up{pipeline=\"sensor/door_contact\"}", metrics.Render(), StringComparison.Ordinal);

        var json = TempConfigDir.Sample()
            .Replace("rtsp://user:pass@192.168.1.64:554/stream1", "rtsp://user:pass@192.168.1.65:554/stream2", StringComparison.Ordinal)
            .Replace("\"interval\": \"5s\"", "\"interval\": \"10s\"", StringComparison.Ordinal)
            .Replace("{ \"name\": \"pi\", \"source\": \"exec:rpicam-vid -t 0 --inline --codec h264 -o -\" }",
                     "{ \"name\": \"pi\", \"source\": \"exec:rpicam-vid -t 0 --inline --codec h264 -o -\" }, { \"name\": \"yard\", \"source\": \"rtsp://10.0.0.9/1\" }", StringComparison.Ordinal);
        var after = EdgeConfigLoader.Parse(json, "/tmp").Config!;
        after.Sensors.RemoveAt(1);

        var result = await supervisor.ApplyAsync(after);
        Assert.Equal(["camera/door", "sensor/cpu_temp"], result.Restarted.Order());
        Assert.Equal(["camera/yard"], result.Started);
        Assert.Equal(["sensor/door_contact"], result.Stopped);
        Assert.Equal(["camera/pi", "mqtt", "uplink"], result.Unchanged.Order());

        await EdgeTestHost.WaitUntilAsync(() => log.Count("camera/door") == 2 && log.Count("sensor/cpu_temp") == 2 && log.Count("camera/yard") == 1,
            TimeSpan.FromSeconds(10), "restarts");
        await Task.Delay(300);
        Assert.Equal(1, log.Count("uplink"));
        Assert.Equal(1, log.Count("camera/pi"));
        Assert.Equal(1, log.Count("mqtt"));
        Assert.Equal(1, log.Count("sensor/door_contact"));
        Assert.DoesNotContain(supervisor.Snapshot(), s => s.Name == "sensor/door_contact");
        Assert.Contains("playing rtsp://user:pass@192.168.1.65:554/stream2", supervisor.Snapshot().Single(s => s.Name == "camera/door").Status, StringComparison.Ordinal);
        Assert.DoesNotContain("sensor/door_contact", metrics.Render(), StringComparison.Ordinal);

        var again = await supervisor.ApplyAsync(after);
        Assert.Empty(again.Restarted);
        Assert.Empty(again.Started);
        Assert.Empty(again.Stopped);
    }

    [Fact]
    public async Task Stopping_stops_every_pipeline()
    {
        var log = new StartLog();
        var supervisor = new PipelineSupervisor([new FakeFeatureFactory(log)], new Meter("test"), TimeProvider.System,
            NullLogger<PipelineSupervisor>.Instance, Fast());
        await supervisor.StartAsync(EdgeConfigLoader.Parse(TempConfigDir.Sample(), "/tmp").Config!);
        await EdgeTestHost.WaitUntilAsync(() => supervisor.Snapshot().All(s => s.State == PipelineState.Running), TimeSpan.FromSeconds(10), "running");
        var stop = System.Diagnostics.Stopwatch.StartNew();
        await supervisor.StopAsync();
        Assert.True(stop.Elapsed < TimeSpan.FromSeconds(2), $"stop took {stop.Elapsed}");
        Assert.All(supervisor.Snapshot(), s => Assert.Equal(PipelineState.Stopped, s.State));
        await supervisor.DisposeAsync();
    }
}
