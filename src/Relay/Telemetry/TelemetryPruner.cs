namespace Pinhole.Relay.Telemetry;

/// <summary>Applies each tier's retention at start and then every hour.</summary>
internal sealed class TelemetryPruner(ITelemetryStore store, TelemetryRetention retention, TimeProvider time, ILogger<TelemetryPruner> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1), time);
        do
        {
            try
            {
                var r = await Task.Run(() => store.Prune(time.GetUtcNow(), retention), stoppingToken).ConfigureAwait(false);
                if (r.Raw + r.Minute + r.Hour > 0) TelemetryLog.Pruned(log, r.Raw, r.Minute, r.Hour);
            }
            catch (Exception e) when (e is System.Data.Common.DbException or InvalidOperationException or TimeoutException)
            {
                TelemetryLog.PruneFailed(log, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
