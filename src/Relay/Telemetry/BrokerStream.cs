using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// A byte stream to the telemetry broker of relay.json (<c>telemetry.mqtt</c>), for devices that carry their MQTT
/// connection through their uplink (the uplink's <c>mqtt</c> device service): the device's MQTT client speaks through
/// it to the broker exactly as it would directly, with its own credentials. <c>mqtt://</c> is TCP, <c>mqtts://</c>
/// TLS with the system roots, <c>ws://</c>/<c>wss://</c> a WebSocket with the <c>mqtt</c> subprotocol whose binary
/// messages carry the bytes (MQTT over WebSocket lets packets span or share messages).
/// </summary>
public static class BrokerStream
{
    /// <summary>Connects to <paramref name="broker"/>.</summary>
    /// <exception cref="ArgumentException">Not an mqtt://, mqtts://, ws:// or wss:// URL.</exception>
    public static async Task<Stream> ConnectAsync(Uri broker, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(broker);
        switch (broker.Scheme)
        {
            case "ws" or "wss":
                var ws = new ClientWebSocket();
                ws.Options.AddSubProtocol("mqtt");
                try
                {
                    await ws.ConnectAsync(broker, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    ws.Dispose();
                    throw;
                }
                return WebSocketStream.Create(ws, WebSocketMessageType.Binary, ownsWebSocket: true);
            case "mqtt" or "mqtts" or "tcp":
                var client = new TcpClient { NoDelay = true };
                try
                {
                    var port = broker.IsDefaultPort || broker.Port <= 0 ? (broker.Scheme == "mqtts" ? 8883 : 1883) : broker.Port;
                    await client.ConnectAsync(broker.Host, port, cancellationToken).ConfigureAwait(false);
                    if (broker.Scheme != "mqtts") return new OwningStream(client.GetStream(), client);
                    var tls = new SslStream(client.GetStream(), leaveInnerStreamOpen: false);
                    await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = broker.Host }, cancellationToken).ConfigureAwait(false);
                    return new OwningStream(tls, client);
                }
                catch
                {
                    client.Dispose();
                    throw;
                }
            default:
                throw new ArgumentException($"'{broker.Scheme}' is not a broker scheme (mqtt, mqtts, ws, wss)", nameof(broker));
        }
    }

    // The network stream of a TcpClient does not own the client; this disposes both.
    private sealed class OwningStream(Stream inner, IDisposable owner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                owner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
