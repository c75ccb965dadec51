using System.Net;
using System.Net.Sockets;

namespace Pinhole.Testing;

/// <summary>
/// Free loopback ports for servers the tests start. The kernel picks a port by binding to 0; the
/// socket is closed again, so another process can race for it, which on loopback is rare. Prefer
/// letting a server bind to 0 itself when it can report its port. A number is never handed out
/// twice in one test process: servers inside network namespaces do not occupy the host's ports, so
/// without that the kernel could offer a port that a namespaced server already holds.
/// </summary>
public static class FreePort
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int Port, ProtocolType Protocol), bool> Given = new();

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int Get() => GetTcp();

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int GetTcp() => GetNew(SocketType.Stream, ProtocolType.Tcp);

    /// <summary>A UDP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int GetUdp() => GetNew(SocketType.Dgram, ProtocolType.Udp);

    private static int GetNew(SocketType type, ProtocolType protocol)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, type, protocol);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
            if (Given.TryAdd((port, protocol), true) || attempt >= 100)
                return port;
        }
    }

    /// <summary>A port on 127.0.0.1 free for both TCP and UDP (for a peer such as RTSP that may use the same number for both).</summary>
    public static int GetTcpAndUdp()
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = GetTcp();
            try
            {
                using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
                if (!Given.TryAdd((port, ProtocolType.Udp), true) && attempt < 20)
                    continue;
                return port;
            }
            catch (SocketException) when (attempt < 20)
            {
            }
        }
    }
}
