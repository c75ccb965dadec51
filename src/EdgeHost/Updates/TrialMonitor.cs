using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Updates;

/// <summary>
/// Runs while this release is on trial (<c>ROOT/trial</c> names its version): once a second it checks
/// that the application works — the uplink is connected, every camera has sent frames over it, and
/// (when MQTT is configured with sensors) the broker acknowledged a telemetry publish — and commits
/// when all hold. Until then it writes the first unmet condition to <c>ROOT/trial-status</c>, which the
/// launcher quotes if it rolls back. It never rolls back itself: that is the launcher's job, so a
/// release that hangs or crashes is rolled back all the same.
/// </summary>
public sealed partial class TrialMonitor(EdgeConfig config, UpdateAgent agent, UplinkClient uplink, Telemetry.TelemetryCounters telemetry, TimeProvider time, ILogger<TrialMonitor> logger) : BackgroundService
{
    /// <summary>The first unmet condition, or null when the release works.</summary>
    public string? Unmet()
    {
        if (uplink.ConnectedRelay is null) return "the uplink is not connected";
        foreach (var camera in config.Cameras)
        {
            var queue = uplink.Queue.Cameras.FirstOrDefault(c => c.Name == camera.Name);
            if (queue is null || queue.SentFrames == 0) return $"camera {camera.Name} has not delivered frames";
        }
        if (config.Mqtt is not null && config.Sensors.Count > 0 &&
            telemetry.Published == 0)
            return "no telemetry publish acknowledged by the broker yet";
        return null;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var root = agent.InstallRoot;
        var trial = root.ReadTrial();
        if (trial is null || trial.Version != agent.RunningVersion) return;
        LogTrial(logger, trial.Version, trial.TimeoutSeconds);
        string? last = "";
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var unmet = Unmet();
            if (unmet is null) break;
            if (unmet != last)
            {
                last = unmet;
                try { root.WriteTrialStatus(unmet); } catch (IOException) { }
            }
        }
        if (stoppingToken.IsCancellationRequested) return;
        root.Commit(trial.Version);
        LogCommitted(logger, trial.Version);
        agent.ReportCommitted(trial.Version);
        root.Prune(trial.Version, trial.Previous);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Update: {Version} is on trial; it commits once the uplink, cameras and telemetry work (the launcher rolls back after {Timeout} s)")]
    private static partial void LogTrial(ILogger logger, string version, int timeout);

    [LoggerMessage(Level = LogLevel.Information, Message = "Update: {Version} passed its trial and is committed")]
    private static partial void LogCommitted(ILogger logger, string version);
}
