using System.Net;
using System.Net.Sockets;

namespace Pinhole.Testing;

/// <summary>
/// Connections from a chosen loopback address. Any 127.x.y.z is loopback on Linux, so each address
/// is another client to a server on 127.0.0.1: how attacker tests act as many clients, or as a
/// stranger beside the owner, without leaving the machine.
/// </summary>
public static class LoopbackClient
{
    /// <summary>A TCP connection to <paramref name="target"/> from <paramref name="address"/> (e.g. "127.0.0.2").</summary>
    public static async Task<Socket> ConnectFromAsync(string address, EndPoint target, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Parse(address), 0));
            await socket.ConnectAsync(target, cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>An HTTP handler whose every connection comes from <paramref name="address"/>; no redirects
    /// are followed, and cookies go to <paramref name="cookies"/> (a fresh jar when null).</summary>
    public static SocketsHttpHandler Handler(string address, CookieContainer? cookies = null) => new()
    {
        AllowAutoRedirect = false,
        UseCookies = true,
        CookieContainer = cookies ?? new CookieContainer(),
        ConnectCallback = async (context, ct) => new NetworkStream(await ConnectFromAsync(address, context.DnsEndPoint, ct), ownsSocket: true),
    };
}
