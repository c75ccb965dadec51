using Microsoft.Extensions.Logging;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Drivers.Cameras;

/// <summary>
/// An IP camera read with <see cref="RtspClient"/>. With <see cref="RtspClientOptions.TransportFallback"/>
/// (the <c>auto</c> transport) the source remembers the lower transport that last played and tries it
/// first on the next run, so a UDP-only camera costs one refused SETUP once, not on every restart.
/// </summary>
public sealed class RtspCameraSource : CameraSource
{
    private readonly Uri _url;
    private readonly RtspClientOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;
    private volatile Remembered? _transport;

    /// <summary>Creates the source; credentials in <paramref name="url"/> are used for auth and never logged.</summary>
    public RtspCameraSource(Uri url, RtspClientOptions options, ILoggerFactory loggerFactory, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _url = url;
        _options = options;
        _loggerFactory = loggerFactory;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The client options for a configured transport: <c>auto</c> is TCP first with fallback.</summary>
    public static RtspClientOptions OptionsFor(CameraTransport transport) => transport switch
    {
        CameraTransport.Tcp => new RtspClientOptions { Transport = RtspLowerTransport.Tcp },
        CameraTransport.Udp => new RtspClientOptions { Transport = RtspLowerTransport.Udp },
        _ => new RtspClientOptions { Transport = RtspLowerTransport.Tcp, TransportFallback = true },
    };

    /// <inheritdoc />
    public override string DisplayName => RtspUrl.Redact(_url);

    /// <summary>
    /// The lower transport the camera last delivered media over (the one in use while a session
    /// plays); null before the first packet, and again after a run in which the remembered one
    /// delivered nothing. With fallback on, the next run tries it first.
    /// </summary>
    public RtspLowerTransport? Transport => _transport?.Value;

    /// <summary>Raised when a session's first RTP packet arrives, with its lower transport (on the receiving thread).</summary>
    public event Action<RtspLowerTransport>? Playing;

    /// <inheritdoc />
    public override async Task RunAsync(IMediaSink sink, CancellationToken cancellationToken)
    {
        var options = _options.TransportFallback && Transport is { } worked ? _options with { Transport = worked } : _options;
        var client = new RtspClient(_url, options, _loggerFactory.CreateLogger<RtspClient>(), _time);
        var delivered = false;
        client.Playing += transport =>
        {
            delivered = true;
            _transport = new Remembered(transport);
            Playing?.Invoke(transport);
        };
        try
        {
            await client.RunAsync(sink, cancellationToken).ConfigureAwait(false);
        }
        catch (RtspClientException e)
        {
            // What worked before did not now (no media at all): start from the default next time
            // rather than retry a transport the network may have started to block.
            if (!delivered && _options.TransportFallback) _transport = null;
            throw new CameraException("camera " + e.Message, e);
        }
    }

    // An enum cannot be volatile or Interlocked; a reference to an immutable box can.
    private sealed record Remembered(RtspLowerTransport Value);
}
