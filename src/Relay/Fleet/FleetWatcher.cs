namespace Pinhole.Relay.Fleet;

/// <summary>Runs <see cref="FleetService.WatchAsync"/> for the life of the relay.</summary>
internal sealed class FleetWatcher(FleetService fleet) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => fleet.WatchAsync(TimeSpan.FromSeconds(1), stoppingToken);
}
