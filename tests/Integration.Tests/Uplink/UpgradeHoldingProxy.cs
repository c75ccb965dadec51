using System.Net.Sockets;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>
/// A reverse proxy on loopback (port 0) in front of a relay that swallows WebSocket upgrades, as some middleboxes do:
/// a request carrying <c>Upgrade</c> is read and then held, never answered and never forwarded, until the client gives
/// up. Every other request (the HTTP fallback's GET and POST) is forwarded to the relay and its bytes pumped both ways.
/// </summary>
internal sealed class UpgradeHoldingProxy : HttpHeadProxy
{
    private readonly int _backendPort;
    private int _held, _forwarded;

    public UpgradeHoldingProxy(int backendPort) : base(maxHeadBytes: 16384)
    {
        _backendPort = backendPort;
        Start();
    }

    /// <summary>Upgrade requests held unanswered so far.</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>Plain requests forwarded to the relay so far.</summary>
    public int Forwarded => Volatile.Read(ref _forwarded);

    protected override async Task HandleAsync(Socket client, byte[] head)
    {
        if (Text(head).Split("\r\n").Any(l => l.StartsWith("Upgrade:", StringComparison.OrdinalIgnoreCase)))
        {
            Interlocked.Increment(ref _held);
            // Held: read (and drop) whatever else comes until the client closes.
            var sink = new byte[1024];
            while (await client.ReceiveAsync(sink, SocketFlags.None, Stopping) > 0) { }
            return;
        }
        Interlocked.Increment(ref _forwarded);
        var upstream = await ConnectAsync("127.0.0.1", _backendPort, noDelay: true);
        await upstream.SendAsync(head, SocketFlags.None, Stopping);
        await RelayAsync(client, upstream);
    }
}
