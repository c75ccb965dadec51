using System.Security.Cryptography;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Streaming.Rtsp;

/// <summary>The answer to a publishing client: 200 to go on, otherwise the RTSP status and a reason phrase.</summary>
/// <param name="Status">RTSP status code.</param>
/// <param name="Reason">Reason phrase (what the client's log shows); null: the standard one.</param>
public readonly record struct RtspPublishDecision(int Status, string? Reason = null)
{
    /// <summary>Go on.</summary>
    public static readonly RtspPublishDecision Accept = new(200);

    /// <summary>True for <see cref="Accept"/>.</summary>
    public bool IsAccepted => Status == 200;
}

/// <summary>
/// Where an <see cref="RtspServer"/> sends streams that clients publish with <c>ANNOUNCE</c> and
/// <c>RECORD</c> (RFC 2326 §10.3, §10.11). Without one, the server answers those methods 405.
/// </summary>
public interface IRtspPublishHandler
{
    /// <summary>True when <paramref name="path"/> (the request URL's path, e.g. <c>/gw1/in/door</c>) names a
    /// place to publish to; such a URL is never looked up as a stream to play.</summary>
    bool IsPublishPath(string path);

    /// <summary>Decides an <c>ANNOUNCE</c> (and again the <c>RECORD</c>): may <paramref name="user"/> (null when the
    /// server is anonymous) publish to <paramref name="path"/> now?</summary>
    RtspPublishDecision Check(string? user, string path);

    /// <summary>Starts a publication after <c>RECORD</c>; null with a refusal when the target went away since.
    /// The server disposes the publication when the client stops (TEARDOWN, connection closed).</summary>
    IRtspPublication? Start(string? user, string path, out RtspPublishDecision refusal);
}

/// <summary>One stream being published: the access units of the client's tracks go to <see cref="IMediaSink"/>.</summary>
public interface IRtspPublication : IMediaSink, IDisposable
{
    /// <summary>Cancelled when the publication can no longer be delivered (its target left); the server then
    /// closes the publisher's connection.</summary>
    CancellationToken Ended { get; }
}

/// <summary>
/// One publishing session on an RTSP connection: the announced SDP, a depacketizer per track that the
/// client set up (TCP interleaved), and, once recording, the publication they feed.
/// </summary>
internal sealed class RtspPublishSession : IDisposable
{
    private readonly (MediaDescription Media, RtpDepacketizer Depacketizer)[] _tracks;
    private readonly Dictionary<byte, int> _rtpChannels = [];
    private readonly HashSet<byte> _rtcpChannels = [];
    private readonly string[] _controls;
    private MediaSinkMultiplexer? _mux;
    private IRtspPublication? _publication;

    private RtspPublishSession(string path, (MediaDescription, RtpDepacketizer)[] tracks)
    {
        Path = path;
        _tracks = tracks;
        _controls = [.. tracks.Select(t => LastSegment(t.Item1.Control))];
        Id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
    }

    /// <summary>The session identifier (RFC 2326 §3.4).</summary>
    public string Id { get; }

    /// <summary>The announced URL's path (<c>/gw1/in/door</c>).</summary>
    public string Path { get; }

    /// <summary>True after SETUP of at least one track.</summary>
    public bool HasTracksSetUp => _rtpChannels.Count > 0;

    /// <summary>True after RECORD.</summary>
    public bool IsRecording => _publication is not null;

    /// <summary>Packets that failed to parse or depacketize.</summary>
    public long BadPackets { get; private set; }

    /// <summary>Builds the session from an ANNOUNCE body; null with a status when the SDP is malformed (400)
    /// or carries no track of a codec Pinhole carries (415).</summary>
    public static RtspPublishSession? Create(string path, string sdp, out RtspPublishDecision refusal)
    {
        SessionDescription description;
        try
        {
            description = SessionDescription.Parse(sdp);
        }
        catch (MediaFormatException e)
        {
            refusal = new RtspPublishDecision(400, "Bad SDP: " + OneLine(e.Message));
            return null;
        }
        var tracks = new List<(MediaDescription, RtpDepacketizer)>();
        foreach (var media in description.Media)
        {
            try
            {
                if (RtpDepacketizerFactory.TryCreate(media, tracks.Count, out var depacketizer)) tracks.Add((media, depacketizer!));
            }
            catch (MediaFormatException e)
            {
                refusal = new RtspPublishDecision(400, $"Bad SDP ({media.Media}): " + OneLine(e.Message));
                return null;
            }
        }
        if (tracks.Count == 0)
        {
            refusal = new RtspPublishDecision(415, "Unsupported Media Type (H.264, H.265, AAC, G.711 only)");
            return null;
        }
        refusal = RtspPublishDecision.Accept;
        return new RtspPublishSession(path, [.. tracks]);
    }

    /// <summary>The track a SETUP URL names: the part after the announced path is a media section's
    /// <c>a=control</c> (FFmpeg: <c>streamid=N</c>), or nothing for a single-track stream. -1: none.</summary>
    public int TrackFor(string requestPath)
    {
        var rest = requestPath.Length > Path.Length ? requestPath[Path.Length..].Trim('/') : "";
        if (rest.Length == 0) return _tracks.Length == 1 ? 0 : -1;
        return Array.IndexOf(_controls, rest);
    }

    /// <summary>Sets a track up on interleaved channels; false when the channels are taken.</summary>
    public bool SetUp(int track, RtspRange channels)
    {
        if (channels.First is < 0 or > 255 || channels.Second is < 0 or > 255 || channels.First == channels.Second) return false;
        var rtp = (byte)channels.First;
        var rtcp = (byte)channels.Second;
        foreach (var (channel, t) in _rtpChannels)
            if (t != track && (channel == rtp || channel == rtcp)) return false;
        if (_rtcpChannels.Contains(rtp)) return false;
        foreach (var (channel, t) in _rtpChannels.Where(p => p.Value == track).ToList()) _rtpChannels.Remove(channel);
        _rtpChannels[rtp] = track;
        _rtcpChannels.Add(rtcp);
        return true;
    }

    /// <summary>Starts delivering to <paramref name="publication"/> (RECORD).</summary>
    public void Record(IRtspPublication publication)
    {
        // Only the tracks set up are published, renumbered in order, so the receiver sees no silent track.
        var setUp = _rtpChannels.Values.Distinct().Order().ToArray();
        var index = new int[_tracks.Length];
        Array.Fill(index, -1);
        for (var i = 0; i < setUp.Length; i++) index[setUp[i]] = i;
        _mux = new MediaSinkMultiplexer(publication, setUp.Length, setUp.Select(t => _tracks[t].Depacketizer.TrackInfo));
        _outputs = [.. index.Select(i => i < 0 ? null : new Renumbered(_mux, i))];
        _publication = publication;
    }

    private Renumbered?[] _outputs = [];

    /// <summary>One interleaved frame from the client: RTP of a set-up track is depacketized; RTCP and
    /// anything before RECORD is ignored.</summary>
    public void OnInterleaved(in InterleavedFrame frame)
    {
        if (_mux is null || !_rtpChannels.TryGetValue(frame.Channel, out var track) || _outputs[track] is not { } output) return;
        try
        {
            var packet = RtpPacket.Parse(frame.Payload);
            _tracks[track].Depacketizer.Push(packet, output);
        }
        catch (MediaFormatException)
        {
            // One bad packet costs its frame (the depacketizer waits for the next keyframe), not the session.
            BadPackets++;
        }
    }

    public void Dispose()
    {
        _publication?.Dispose();
        _publication = null;
        _mux = null;
    }

    private static string LastSegment(string? control)
    {
        if (string.IsNullOrEmpty(control)) return "";
        if (Uri.TryCreate(control, UriKind.Absolute, out var u)) control = u.AbsolutePath;
        return control.TrimEnd('/').Split('/')[^1];
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    // The depacketizer numbers units by its SDP index; the publication by the tracks that were set up.
    private sealed class Renumbered(MediaSinkMultiplexer mux, int track) : IAccessUnitOutput
    {
        public void OnAccessUnit(TrackInfo info, in AccessUnit unit) =>
            mux.OnAccessUnit(info, unit with { Track = track });
    }
}
