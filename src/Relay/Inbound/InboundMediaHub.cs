using Microsoft.Extensions.Logging;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Uplink;
using Pinhole.Relay.Viewers;
using Pinhole.Streaming;
using Pinhole.Streaming.Rtsp;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Inbound;

/// <summary>
/// WAN to LAN media (docs/rtsp.md, "Publishing to a device"): a client publishes with RTSP
/// ANNOUNCE/RECORD to <c>rtsp://RELAY/ID/in/NAME</c>; the stream goes into a hub of its own
/// (one <see cref="MediaStream"/> per publication, never mixed with the cameras viewers watch)
/// and the device's uplink session sends it down (<see cref="InboundMediaSender"/>).
/// Who may publish: admins and viewers with <c>"publish": true</c>; never anonymous.
/// </summary>
public sealed class InboundMediaHub : IRtspPublishHandler
{
    private readonly ViewerDirectory _viewers;
    private readonly Func<string, bool> _deviceExists;
    private readonly UplinkSessionRegistry _sessions;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly HashSet<(string Device, string Name)> _publishing = [];

    /// <summary>Creates the hub.</summary>
    /// <param name="viewers">Who may publish.</param>
    /// <param name="deviceExists">True for a device the relay knows (configured or enrolled).</param>
    /// <param name="sessions">The live uplinks.</param>
    /// <param name="logger">Logger.</param>
    public InboundMediaHub(ViewerDirectory viewers, Func<string, bool> deviceExists, UplinkSessionRegistry sessions, ILogger<InboundMediaHub>? logger = null)
    {
        _viewers = viewers ?? throw new ArgumentNullException(nameof(viewers));
        _deviceExists = deviceExists ?? throw new ArgumentNullException(nameof(deviceExists));
        _sessions = sessions ?? throw new ArgumentNullException(nameof(sessions));
        _logger = (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    // One subscriber per published stream: the device's uplink. Each publication has a stream of its own
    // (no registry), so nothing outlives it however many names are published over time.
    private static readonly MediaStreamLimits Limits = new() { MaxViewersPerStream = 1 };

    /// <summary>Publications running now.</summary>
    public int Count { get { lock (_lock) return _publishing.Count; } }

    /// <inheritdoc />
    public bool IsPublishPath(string path) => TryParse(path, out _, out _) || IsInPath(path);

    // /ID/in/… that is not a valid NAME is still a publish URL (answered 404), never a camera track.
    private static bool IsInPath(string path)
    {
        var s = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return s.Length == 3 && s[1] == "in" && !s[2].StartsWith("trackID=", StringComparison.Ordinal) && s[2] != "*";
    }

    private static bool TryParse(string path, out string device, out string name)
    {
        device = name = "";
        var s = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (s.Length != 3 || s[1] != "in") return false;
        device = Uri.UnescapeDataString(s[0]);
        name = Uri.UnescapeDataString(s[2]);
        return UplinkProtocol.IsValidCameraName(name) && device.Length > 0;
    }

    /// <inheritdoc />
    public RtspPublishDecision Check(string? user, string path)
    {
        if (user is null || !_viewers.MayPublish(user))
            return new(403, "Forbidden (publishing needs an admin or a viewer with \"publish\": true)");
        if (!TryParse(path, out var device, out _)) return new(404, "Not Found (publish to /DEVICE/in/NAME, NAME of A-Z a-z 0-9 . _ -)");
        if (!_deviceExists(device)) return new(404, "Not Found (unknown device)");
        if (!_sessions.TryGet(device, out var session)) return new(503, "Service Unavailable (device offline)");
        if (!session.IsWelcomed) return new(503, "Service Unavailable (device connecting)");
        if ((session.Capabilities & UplinkCapabilities.InboundMedia) == 0)
            return new(501, "Not Implemented (device does not support inbound media)");
        return RtspPublishDecision.Accept;
    }

    /// <inheritdoc />
    public IRtspPublication? Start(string? user, string path, out RtspPublishDecision refusal)
    {
        refusal = Check(user, path);
        if (!refusal.IsAccepted) return null;
        TryParse(path, out var device, out var name);
        lock (_lock)
        {
            if (!_publishing.Add((device, name)))
            {
                refusal = new(503, $"Service Unavailable ({name} is being published already)");
                return null;
            }
        }
        var stream = new MediaStream(device, name, Limits, registry: null);
        var publication = new Publication(this, device, name, stream);
        if (!_sessions.TryGet(device, out var session) || !session.TryStartInbound(stream, publication.Stopped, publication.Cancel))
        {
            publication.Dispose();
            refusal = new(503, "Service Unavailable (device offline)");
            return null;
        }
        InboundLog.Started(_logger, device, name, user!);
        return publication;
    }

    private void Ended(string device, string name)
    {
        lock (_lock) _publishing.Remove((device, name));
        InboundLog.Ended(_logger, device, name);
    }

    private sealed class Publication(InboundMediaHub hub, string device, string name, MediaStream stream) : IRtspPublication
    {
        private readonly CancellationTokenSource _ended = new();
        private readonly CancellationTokenSource _stopped = new();
        private int _disposed;

        public CancellationToken Ended => _ended.Token;

        /// <summary>Cancelled when the publisher stops: the sender ends.</summary>
        public CancellationToken Stopped => _stopped.Token;

        // The uplink ended (or refused the stream): the publisher's connection is closed.
        public void Cancel()
        {
            try { _ended.Cancel(); }
            catch (ObjectDisposedException) { }
        }

        public void OnTracks(IReadOnlyList<TrackInfo> tracks) => stream.OnTracks(tracks);

        public void OnAccessUnit(in AccessUnit unit) => stream.OnAccessUnit(unit);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            // The sender sees Offline, tells the device (InboundEnd) and leaves the stream.
            stream.SetOffline();
            _stopped.Cancel();
            hub.Ended(device, name);
        }
    }
}

internal static partial class InboundLog
{
    [LoggerMessage(1, LogLevel.Information, "inbound media: {User} publishes {Device}/in/{Name}")]
    public static partial void Started(ILogger logger, string device, string name, string user);

    [LoggerMessage(2, LogLevel.Information, "inbound media: {Device}/in/{Name} ended")]
    public static partial void Ended(ILogger logger, string device, string name);
}
