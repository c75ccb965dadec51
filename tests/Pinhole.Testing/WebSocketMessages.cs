using System.Net.WebSockets;
using System.Text;
using Xunit;

namespace Pinhole.Testing;

/// <summary>Whole messages from a WebSocket a test holds (a message may come in several frames).</summary>
public static class WebSocketMessages
{
    /// <summary>Reads one whole text message; any other kind of message fails the test.</summary>
    public static async Task<string> ReceiveTextAsync(WebSocket ws, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ws);
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var r = await ws.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false);
            Assert.Equal(WebSocketMessageType.Text, r.MessageType);
            message.Write(buffer, 0, r.Count);
            if (r.EndOfMessage) return Encoding.UTF8.GetString(message.ToArray());
        }
    }
}
