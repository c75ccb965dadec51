namespace Pinhole.EdgeHost.Supervision;

/// <summary>Timing of the supervisor. The defaults suit a device; tests shorten them.</summary>
public sealed class SupervisorOptions
{
    /// <summary>How often the supervisor loop checks for stalls and proves it is alive (the watchdog follows this tick).</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Delay before the first restart.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The backoff doubles per consecutive failure up to this cap.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Each delay is spread by ±this fraction so a fleet does not retry in lockstep.</summary>
    public double Jitter { get; set; } = 0.2;

    /// <summary>A run at least this long counts as healthy: the next failure starts the backoff from the beginning again.</summary>
    public TimeSpan HealthyRunResetsBackoff { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a cancelled pipeline gets to finish before it is abandoned and replaced.</summary>
    public TimeSpan StopGrace { get; set; } = TimeSpan.FromSeconds(2);
}
