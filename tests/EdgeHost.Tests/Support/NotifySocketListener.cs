using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;

namespace Pinhole.EdgeHost.Tests.Support;

/// <summary>Plays systemd's side of sd_notify: a bound Unix datagram socket that records every message.</summary>
public sealed class NotifySocketListener : IDisposable
{
    private readonly Socket _socket;
    private readonly string? _directory;
    private readonly Thread _receiving;
    private volatile bool _stopping;

    /// <param name="abstractName">Bind a Linux abstract name (NOTIFY_SOCKET=@name) instead of a path.</param>
    public NotifySocketListener(bool abstractName = false)
    {
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        if (abstractName)
        {
            var name = $"pinhole-test-{Guid.NewGuid():N}";
            _socket.Bind(new UnixDomainSocketEndPoint("\0" + name));
            NotifySocket = "@" + name;
        }
        else
        {
            _directory = Directory.CreateTempSubdirectory("pinhole-notify-").FullName;
            NotifySocket = Path.Combine(_directory, "notify.sock");
            _socket.Bind(new UnixDomainSocketEndPoint(NotifySocket));
        }
        _socket.ReceiveTimeout = 200;
        // A dedicated thread, not the thread pool: the timestamps must be when each datagram arrived,
        // even while a test deliberately blocks pool threads.
        _receiving = new Thread(Receive) { IsBackground = true, Name = "notify-socket-listener" };
        _receiving.Start();
    }

    /// <summary>The value for NOTIFY_SOCKET.</summary>
    public string NotifySocket { get; }

    public ConcurrentQueue<(DateTime At, string Message)> Messages { get; } = new();

    public IReadOnlyList<DateTime> Times(string assignment) =>
        [.. Messages.Where(m => m.Message.Split('\n').Contains(assignment)).Select(m => m.At)];

    public bool Received(string assignment) => Times(assignment).Count > 0;

    private void Receive()
    {
        var buffer = new byte[4096];
        while (!_stopping)
        {
            try
            {
                var n = _socket.Receive(buffer);
                Messages.Enqueue((DateTime.UtcNow, Encoding.UTF8.GetString(buffer, 0, n)));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { }
            catch (SocketException) { return; }
            catch (ObjectDisposedException) { return; }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _receiving.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
        if (_directory is not null) Directory.Delete(_directory, recursive: true);
    }
}
