using Microsoft.Extensions.Logging;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Drivers.Cameras;

/// <summary>An IP camera read with <see cref="RtspClient"/> (RTP over TCP by default).</summary>
public sealed class RtspCameraSource : CameraSource
{
    private readonly Uri _url;
    private readonly RtspClientOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;

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

    /// <inheritdoc />
    public override string DisplayName => RtspUrl.Redact(_url);

    /// <inheritdoc />
    public override async Task RunAsync(IMediaSink sink, CancellationToken cancellationToken)
    {
        var client = new RtspClient(_url, _options, _loggerFactory.CreateLogger<RtspClient>(), _time);
        try
        {
            await client.RunAsync(sink, cancellationToken).ConfigureAwait(false);
        }
        catch (RtspClientException e)
        {
            throw new CameraException("camera " + e.Message, e);
        }
    }
}
