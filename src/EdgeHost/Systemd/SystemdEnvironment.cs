using System.Globalization;

namespace Pinhole.EdgeHost.Systemd;

/// <summary>
/// What systemd told this process through its environment (see sd_notify(3), sd_watchdog_enabled(3)
/// and systemd.exec(5)). Read once at start-up. The notifications themselves go through
/// Microsoft.Extensions.Hosting.Systemd, whose <c>SystemdNotifier</c> reads NOTIFY_SOCKET itself; this
/// decides whether to use it at all and adds what the package does not read (the watchdog, the journal).
/// </summary>
public sealed record SystemdEnvironment(string? NotifySocket, TimeSpan? WatchdogTimeout, bool JournalStream)
{
    /// <summary>Not under systemd.</summary>
    public static SystemdEnvironment None { get; } = new(null, null, false);

    /// <summary>Reads NOTIFY_SOCKET, WATCHDOG_USEC (+ WATCHDOG_PID) and JOURNAL_STREAM.</summary>
    public static SystemdEnvironment FromEnvironment()
    {
        var socket = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        TimeSpan? watchdog = null;
        if (long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0)
        {
            // WATCHDOG_PID names the process the watchdog is meant for; a child that inherited it must not ping.
            var pid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
            if (string.IsNullOrEmpty(pid) || pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
                watchdog = TimeSpan.FromMicroseconds(usec);
        }
        var journal = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM"));
        return new SystemdEnvironment(string.IsNullOrEmpty(socket) ? null : socket, watchdog, journal);
    }
}
