namespace Pinhole.Relay.Updates;

/// <summary>Runs <see cref="UpdateService.WatchAsync"/> for the life of the relay.</summary>
internal sealed class UpdateWatcher(UpdateService updates) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => updates.WatchAsync(TimeSpan.FromSeconds(1), stoppingToken);
}
