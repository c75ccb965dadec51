using System.Net.Sockets;
using System.Text;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>A minimal HTTP CONNECT proxy on a free loopback port (what a corporate proxy does for wss://).</summary>
internal sealed class ConnectProxy : HttpHeadProxy
{
    public ConnectProxy() : base(maxHeadBytes: 8192) => Start();

    /// <summary>The request lines seen, e.g. <c>CONNECT 127.0.0.1:5000 HTTP/1.1</c>.</summary>
    public List<string> Requests { get; } = [];

    protected override async Task HandleAsync(Socket client, byte[] head)
    {
        var requestLine = Text(head).Split("\r\n")[0];
        lock (Requests) Requests.Add(requestLine);
        var parts = requestLine.Split(' ');
        if (parts.Length != 3 || parts[0] != "CONNECT")
        {
            await client.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"), SocketFlags.None);
            return;
        }
        var target = parts[1].Split(':');
        var upstream = await ConnectAsync(target[0], int.Parse(target[1], System.Globalization.CultureInfo.InvariantCulture));
        await client.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 Connection established\r\n\r\n"), SocketFlags.None);
        await RelayAsync(client, upstream);
    }
}
