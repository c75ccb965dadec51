using Microsoft.Extensions.Logging;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Drivers.Cameras;

/// <summary>How an <c>rtsp://</c> camera's RTP travels (edge.json <c>cameras[].transport</c>).</summary>
public enum CameraTransport
{
    /// <summary>TCP interleaved first; UDP when the camera refuses TCP (461); back to TCP when UDP stays silent. What worked is tried first next time.</summary>
    Auto,

    /// <summary>TCP interleaved only (RFC 2326 §10.12).</summary>
    Tcp,

    /// <summary>UDP unicast only.</summary>
    Udp,
}

/// <summary>
/// A camera on the device: an <c>rtsp://</c> IP camera or an <c>exec:</c> capture command that writes
/// H.264 Annex-B to stdout. Every source produces the same <see cref="IMediaSink"/> stream:
/// <see cref="IMediaSink.OnTracks"/>, then access units.
/// </summary>
public abstract class CameraSource
{
    /// <summary>A description of the source that is safe to log (no credentials).</summary>
    public abstract string DisplayName { get; }

    /// <summary>
    /// Delivers media to <paramref name="sink"/> until <paramref name="cancellationToken"/> is cancelled
    /// (then returns normally). Throws <see cref="CameraException"/> with a credential-free reason when
    /// the camera is unreachable, the stream ends or the capture process exits. Retrying is the caller's job.
    /// </summary>
    public abstract Task RunAsync(IMediaSink sink, CancellationToken cancellationToken);

    /// <summary>
    /// Creates the source for a config string: <c>rtsp://[user:pass@]host[:port]/path</c> or
    /// <c>exec:COMMAND ARGS…</c> (split like a shell, run without one). Throws
    /// <see cref="CameraConfigurationException"/> for anything else.
    /// </summary>
    public static CameraSource Create(string source, ILoggerFactory loggerFactory) => Create(source, CameraTransport.Auto, loggerFactory);

    /// <summary>
    /// As <see cref="Create(string, ILoggerFactory)"/>, with the lower transport an <c>rtsp://</c>
    /// camera uses (ignored by <c>exec:</c>).
    /// </summary>
    public static CameraSource Create(string source, CameraTransport transport, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (string.IsNullOrWhiteSpace(source)) throw new CameraConfigurationException("camera source is empty; expected rtsp://… or exec:COMMAND");
        var trimmed = source.Trim();
        if (trimmed.StartsWith("exec:", StringComparison.OrdinalIgnoreCase))
            return new ExecCameraSource(CommandLine.Split(trimmed["exec:".Length..]), loggerFactory.CreateLogger<ExecCameraSource>());
        if (trimmed.StartsWith("rtsp://", StringComparison.OrdinalIgnoreCase))
        {
            if (!Uri.TryCreate(trimmed, UriKind.Absolute, out var url) || string.IsNullOrEmpty(url.Host))
                throw new CameraConfigurationException($"camera source '{RtspUrl.Redact(trimmed)}' is not a valid rtsp:// URL");
            return new RtspCameraSource(url, RtspCameraSource.OptionsFor(transport), loggerFactory);
        }
        var colon = trimmed.IndexOf(':', StringComparison.Ordinal);
        var scheme = colon > 0 ? trimmed[..colon] : trimmed.Split(' ')[0];
        throw new CameraConfigurationException($"camera source scheme '{RtspUrl.RedactText(scheme)}' is not supported; expected rtsp://… or exec:COMMAND");
    }
}

/// <summary>A camera failed at run time (unreachable, refused, stream ended, process exited). The message has no credentials.</summary>
internal sealed class CameraException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CameraException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public CameraException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic message.</summary>
    public CameraException() : base("camera failed") { }
}

/// <summary>A camera source string in the configuration is invalid (unknown scheme, bad URL, bad quoting).</summary>
internal sealed class CameraConfigurationException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    public CameraConfigurationException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public CameraConfigurationException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic message.</summary>
    public CameraConfigurationException() : base("invalid camera source") { }
}
