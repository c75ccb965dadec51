using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Streaming;
using Pinhole.Streaming.Rtsp;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Inbound;

/// <summary>Takes the inbound-media messages of the uplink (relay to device).</summary>
public interface IInboundMediaHandler
{
    /// <summary>An <see cref="InboundAnnounce"/>, <see cref="InboundFrame"/> or <see cref="InboundEnd"/>, on the uplink's receive thread.</summary>
    void OnMessage(UplinkMessage message);

    /// <summary>The uplink ended: every inbound stream is offline until the relay announces it again.</summary>
    void OnDisconnected();
}

/// <summary>
/// The edge's LAN RTSP server (edge.json <c>rtspServer</c>): streams that WAN clients publish to the relay
/// (<c>rtsp://RELAY/ID/in/NAME</c>) arrive down the uplink and are served at <c>rtsp://DEVICE:PORT/NAME</c>
/// by the relay's own RTSP server code (<see cref="RtspServer"/> with <see cref="RtspServerOptions.SingleDevice"/>),
/// so a LAN display or NVR plays them like any camera: each viewer has a bounded queue and skips to the
/// next keyframe when slow.
/// </summary>
public sealed class InboundRtspServer : IInboundMediaHandler, IHostedService, IAsyncDisposable
{
    /// <summary>The device id the streams are kept under in <see cref="Streams"/> (URLs do not show it).</summary>
    public const string LocalDevice = "lan";

    private readonly Lock _lock = new();
    private readonly Dictionary<ushort, MediaStream> _byId = [];

    /// <summary>Creates the server from edge.json's <c>rtspServer</c> (validated by the loader).</summary>
    public InboundRtspServer(RtspServerConfig config, Meter meter, TimeProvider time, ILoggerFactory? loggers = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!EdgeConfigLoader.TryParseListen(config.Listen, out var endPoint, out var error))
            throw new ArgumentException("rtspServer.listen: " + error, nameof(config));
        Streams = new MediaStreamRegistry(time: time);
        Server = new RtspServer(new RtspServerOptions
        {
            EndPoint = endPoint,
            ServerName = "pinhole-edge",
            SingleDevice = LocalDevice,
        }, Streams, new RtspUserList(config.Users.Select(u => (u.Name, u.Password))), meter, time,
            loggers?.CreateLogger<RtspServer>());
    }

    /// <summary>The inbound streams, under <see cref="LocalDevice"/> and their names.</summary>
    public MediaStreamRegistry Streams { get; }

    /// <summary>The RTSP server (its <see cref="RtspServer.LocalEndPoint"/> once started).</summary>
    public RtspServer Server { get; }

    /// <inheritdoc />
    public void OnMessage(UplinkMessage message)
    {
        lock (_lock)
        {
            switch (message)
            {
                case InboundAnnounce announce:
                    // A name re-announced under another id replaces the old id (the relay restarted the stream).
                    foreach (var (id, s) in _byId.Where(p => p.Value.Camera == announce.Name && p.Key != announce.StreamId).ToList()) _byId.Remove(id);
                    var stream = Streams.GetOrAdd(LocalDevice, announce.Name);
                    _byId[announce.StreamId] = stream;
                    stream.OnTracks(announce.Tracks);
                    break;
                case InboundFrame frame when _byId.TryGetValue(frame.StreamId, out var target):
                    target.OnAccessUnit(frame.Unit); // never blocks: each LAN viewer has its own bounded queue
                    break;
                case InboundEnd end when _byId.Remove(end.StreamId, out var ended):
                    ended.SetOffline();
                    break;
            }
        }
    }

    /// <inheritdoc />
    public void OnDisconnected()
    {
        lock (_lock)
        {
            foreach (var s in _byId.Values) s.SetOffline();
            _byId.Clear();
        }
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Server.StartAsync(cancellationToken);

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Server.StopAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
