using System.Net;
using System.Net.Sockets;

namespace Pinhole.Testing;

/// <summary>
/// Free loopback ports for servers the tests start. The kernel picks a port by binding to 0; the
/// socket is closed again, so another process can race for it, which on loopback is rare. Prefer
/// letting a server bind to 0 itself when it can report its port.
/// </summary>
public static class FreePort
{
    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int Get() => GetTcp();

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int GetTcp()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    /// <summary>A UDP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int GetUdp()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
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
                return port;
            }
            catch (SocketException) when (attempt < 20)
            {
            }
        }
    }
}
