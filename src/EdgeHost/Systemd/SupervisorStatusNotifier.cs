using System.Net.Sockets;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;

namespace Pinhole.EdgeHost.Systemd;

/// <summary>
/// The <see cref="ISystemdNotifier"/> the edge registers: the package's <see cref="SystemdNotifier"/>
/// (one datagram to NOTIFY_SOCKET per message), with two things added.
/// <list type="bullet">
/// <item>The package's <see cref="SystemdLifetime"/> sends a bare <c>READY=1</c> and <c>STOPPING=1</c>;
/// the same datagram here also carries the supervisor's one-line <c>STATUS=</c>, so <c>systemctl status</c>
/// never shows a started service without its summary, and <c>MAINPID=</c>.</item>
/// <item>The package's notifier throws when the socket is gone (systemd restarting, a test that
/// ended); here that is one warning in the log, not an exception in a lifetime callback.</item>
/// </list>
/// </summary>
public sealed partial class SupervisorStatusNotifier(ISystemdNotifier inner, PipelineSupervisor supervisor, ILogger<SupervisorStatusNotifier> logger)
    : ISystemdNotifier
{
    private static readonly string Ready = ServiceState.Ready.ToString();
    private static readonly string Stopping = ServiceState.Stopping.ToString();
    private readonly Lock _lock = new();
    private bool _failing;

    /// <inheritdoc />
    public bool IsEnabled => inner.IsEnabled;

    /// <inheritdoc />
    public void Notify(ServiceState state)
    {
        var text = state.ToString();
        if (text == Ready)
            state = new ServiceState($"READY=1\nSTATUS={PipelineSupervisor.Summarize(supervisor.Snapshot())}\nMAINPID={Environment.ProcessId}");
        else if (text == Stopping)
            state = new ServiceState("STOPPING=1\nSTATUS=stopping");

        // One message at a time: the watchdog loop, STATUS on supervisor changes and the lifetime's
        // callbacks all send from different threads.
        lock (_lock)
        {
            try
            {
                inner.Notify(state);
                if (_failing) LogNotifyResumed(logger);
                _failing = false;
            }
            catch (SocketException e)
            {
                if (!_failing) LogNotifyFailed(logger, e.Message);
                _failing = true;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot notify systemd on NOTIFY_SOCKET: {Reason}")]
    private static partial void LogNotifyFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "notifying systemd on NOTIFY_SOCKET works again")]
    private static partial void LogNotifyResumed(ILogger logger);
}
