using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Pinhole.EdgeHost.Systemd;

/// <summary>
/// What systemd told this process through its environment (see sd_notify(3), sd_watchdog_enabled(3)
/// and systemd.exec(5)). Read once at start-up.
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

/// <summary>
/// sd_notify(3) without libsystemd: one datagram per message to the Unix socket named by
/// NOTIFY_SOCKET. A leading <c>@</c> means a Linux abstract socket name (the <c>@</c> stands for the NUL byte).
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket _socket;
    private readonly UnixDomainSocketEndPoint _endpoint;
    private readonly Lock _lock = new();

    /// <summary>Connects nothing yet; each <see cref="Notify"/> sends one datagram.</summary>
    public SystemdNotifier(string notifySocket)
    {
        ArgumentException.ThrowIfNullOrEmpty(notifySocket);
        var path = notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket;
        _endpoint = new UnixDomainSocketEndPoint(path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>Sends newline-separated assignments such as <c>READY=1\nSTATUS=…</c>. False when the socket is gone (systemd restarting, or a test that ended).</summary>
    public bool Notify(string state)
    {
        var bytes = Encoding.UTF8.GetBytes(state);
        lock (_lock)
        {
            try
            {
                return _socket.SendTo(bytes, SocketFlags.None, _endpoint) == bytes.Length;
            }
            catch (SocketException)
            {
                return false;
            }
            catch (ObjectDisposedException)
            {
                return false;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => _socket.Dispose();
}
