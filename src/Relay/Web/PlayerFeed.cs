using System.Text;
using System.Text.Json;
using Pinhole.Streaming;
using Pinhole.Transport.Fmp4;
using Pinhole.Transport.Media;

namespace Pinhole.Relay.Web;

/// <summary>One message to the player: a JSON control message (text) or an fMP4 segment (binary).</summary>
/// <param name="IsText">True for a JSON control message.</param>
/// <param name="Payload">UTF-8 JSON or the segment bytes.</param>
public readonly record struct PlayerMessage(bool IsText, byte[] Payload);

/// <summary>
/// Turns one viewer's <see cref="MediaEvent"/>s into what the browser player consumes, with no I/O:
/// <c>{"type":"init","mime":…}</c> then the init segment whenever playback (re)starts, one fMP4
/// fragment per frame, <c>{"type":"offline"}</c> when the device leaves, and
/// <c>{"type":"unsupported",…}</c> when the codec cannot play in a browser (H.265, G.711 only).
/// </summary>
/// <remarks>
/// A new init segment is sent on new tracks and also on the first frame after the device was
/// offline, because a returning device restarts its timestamps even when its tracks are unchanged
/// (the hub does not repeat unchanged tracks). After every init, frames are held back until a video
/// keyframe, so the decoder never starts mid-GOP.
/// </remarks>
public sealed class PlayerFeed
{
    private readonly string _rtspUrl;
    private IReadOnlyList<TrackInfo>? _tracks;
    private Fmp4Muxer? _muxer;
    private bool _needInit = true;
    private bool _waitingForKeyframe = true;
    private bool _unsupportedSent;
    private int _videoTrack = -1;

    /// <summary>Creates the feed for one viewer.</summary>
    /// <param name="rtspUrl">The RTSP URL offered instead when the browser cannot play the codec.</param>
    public PlayerFeed(string rtspUrl) => _rtspUrl = rtspUrl;

    /// <summary>fMP4 fragments produced so far.</summary>
    public long Fragments { get; private set; }

    /// <summary>The messages for one event, in order (often none, e.g. while waiting for a keyframe).</summary>
    public IReadOnlyList<PlayerMessage> Handle(in MediaEvent evt)
    {
        switch (evt.Kind)
        {
            case MediaEventKind.Tracks:
                _tracks = evt.Tracks;
                _needInit = true;
                _unsupportedSent = false;
                return [];
            case MediaEventKind.Offline:
                _needInit = true;
                return [Json(new { type = "offline" })];
            case MediaEventKind.Frame:
                return HandleFrame(evt.Unit);
            default:
                return [];
        }
    }

    /// <summary>Whether the browser can play a stream with these tracks, and if not, why.</summary>
    public static string? WhyUnplayable(IReadOnlyList<TrackInfo> tracks)
    {
        ArgumentNullException.ThrowIfNull(tracks);
        if (tracks.Any(t => t.Codec == MediaCodec.H265)) return "H.265 video does not play in every browser";
        if (!tracks.Any(Fmp4Muxer.CanMux)) return "no track a browser can play (" + string.Join(", ", tracks.Select(t => t.Codec)) + ")";
        return null;
    }

    private IReadOnlyList<PlayerMessage> HandleFrame(in AccessUnit unit)
    {
        if (_tracks is null) return [];
        var messages = new List<PlayerMessage>(2);
        if (_needInit)
        {
            if (WhyUnplayable(_tracks) is { } reason)
            {
                if (_unsupportedSent) return [];
                _unsupportedSent = true;
                var codec = _tracks.FirstOrDefault(t => t.IsVideo)?.Codec ?? _tracks[0].Codec;
                return [Json(new { type = "unsupported", codec = codec.ToString(), reason, rtsp = _rtspUrl })];
            }
            _muxer = new Fmp4Muxer(_tracks);
            _videoTrack = -1;
            for (var i = 0; i < _tracks.Count; i++)
                if (_tracks[i].IsVideo && _muxer.IsMuxed(i)) { _videoTrack = i; break; }
            var video = _videoTrack >= 0 ? _tracks[_videoTrack] : null;
            messages.Add(Json(new
            {
                type = "init",
                mime = _muxer.MimeType,
                video = video is not null,
                audio = _tracks.Where((t, i) => !t.IsVideo && _muxer.IsMuxed(i)).Any(),
                width = video?.Width ?? 0,
                height = video?.Height ?? 0,
            }));
            messages.Add(new PlayerMessage(false, _muxer.CreateInitSegment()));
            _needInit = false;
            _waitingForKeyframe = _videoTrack >= 0;
        }
        if (_muxer is null || !_muxer.IsMuxed(unit.Track)) return messages;
        if (_waitingForKeyframe)
        {
            // Audio waits too: starting it before the picture would only stall the video's buffer.
            if (unit.Track != _videoTrack || !unit.IsKeyframe) return messages;
            _waitingForKeyframe = false;
        }
        var fragment = _muxer.CreateFragment(unit);
        if (fragment is not null)
        {
            messages.Add(new PlayerMessage(false, fragment));
            Fragments++;
        }
        return messages;
    }

    private static PlayerMessage Json(object value) => new(true, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(value)));
}
