using System.Security.Cryptography;
using Pinhole.Streaming;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Streaming.Rtsp;

/// <summary>
/// One RTSP session (RFC 2326 §3): the tracks a viewer set up on one camera and, while playing,
/// the loop that takes access units from its <see cref="MediaSubscription"/>, packetizes them and
/// writes them out. Owned by its <see cref="RtspConnection"/>: it ends when the connection closes.
/// </summary>
internal sealed class RtspServerSession : IAsyncDisposable
{
    // A track's DTS that leaps ahead of the last one sent by more than this is a source that restarted
    // its clock, not a pause: the source's own gaps (a viewer skipping to a keyframe) stay below it.
    private const double MaxDtsLeapSeconds = 5;

    private readonly RtspConnection _connection;
    private readonly RtspServerMetrics _metrics;
    private MediaSubscription? _subscription;
    private CancellationTokenSource? _playing;
    private Task? _sender;
    private bool _anchored;
    private bool _resumeAfterGap;
    private readonly Lock _dropLock = new();
    private long _droppedReported;
    private long _droppedBefore;
    private int _disposed;
    private readonly string _viewerNumber;

    public RtspServerSession(RtspConnection connection, RtspServerMetrics metrics, MediaStream stream, IReadOnlyList<TrackInfo> tracks)
    {
        _connection = connection;
        _metrics = metrics;
        Stream = stream;
        Tracks = tracks;
        Description = SdpWriter.Build(tracks);
        Outputs = new RtspTrackOutput?[tracks.Count];
        Id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        _metrics.SessionOpened();
        _metrics.SessionsStarted.Add(1);
        _viewerNumber = _metrics.AddViewer(stream.DeviceId, stream.Camera, () => FramesDropped);
    }

    /// <summary>The session identifier (RFC 2326 §3.4: at least eight octets, unguessable).</summary>
    public string Id { get; }

    public MediaStream Stream { get; }

    /// <summary>The tracks when the session was set up; the codec of each stays fixed for the session.</summary>
    public IReadOnlyList<TrackInfo> Tracks { get; private set; }

    /// <summary>The SDP the tracks were described with (payload types come from it).</summary>
    public SessionDescription Description { get; }

    public RtspTrackOutput?[] Outputs { get; }

    public bool IsPlaying => _sender is { IsCompleted: false };

    public bool HasOutputs => Outputs.Any(o => o is not null);

    public long FramesSent { get; private set; }

    public long BytesSent => Outputs.Sum(o => o?.BytesSent ?? 0);

    public long FramesDropped => _droppedBefore + (_subscription?.DroppedFrames ?? 0);

    /// <summary>Payload type of a track, as written in the SDP.</summary>
    public byte PayloadType(int track) => (byte)Description.Media[track].PayloadType;

    public void SetOutput(int track, RtspTrackOutput output)
    {
        Outputs[track]?.Dispose();
        Outputs[track] = output;
    }

    /// <summary>Starts sending from <paramref name="subscription"/>; call after the PLAY response is written.</summary>
    public void Play(MediaSubscription subscription)
    {
        lock (_dropLock) _subscription = subscription;
        _playing = new CancellationTokenSource();
        _sender = SendLoopAsync(subscription, _playing.Token);
    }

    /// <summary>Stops sending and leaves the stream (PAUSE, TEARDOWN, connection end).</summary>
    public async Task StopAsync()
    {
        var playing = _playing;
        var sender = _sender;
        _playing = null;
        _sender = null;
        if (playing is null) return;
        await playing.CancelAsync().ConfigureAwait(false);
        if (sender is not null)
        {
            try { await sender.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        lock (_dropLock)
        {
            ReportDrops();
            if (_subscription is { } subscription)
            {
                _droppedBefore += subscription.DroppedFrames;
                subscription.Dispose();
            }
            _subscription = null;
            _droppedReported = 0;
        }
        playing.Dispose();
    }

    private async Task SendLoopAsync(MediaSubscription subscription, CancellationToken ct)
    {
        await Task.Yield();
        var lastReport = _connection.Time.GetTimestamp();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var evt = await subscription.ReadAsync(ct).ConfigureAwait(false);
                switch (evt.Kind)
                {
                    case MediaEventKind.Tracks:
                        if (!TryContinueWith(evt.Tracks!))
                        {
                            _connection.EndSessionForCodecChange(this);
                            return;
                        }
                        break;
                    case MediaEventKind.Offline:
                        // Nothing to send until the device is back; the session stays up. The device's
                        // timestamps may restart when it reconnects, so the next frame re-anchors.
                        _resumeAfterGap = _anchored;
                        break;
                    case MediaEventKind.Restart:
                        // The device's source restarted (the stream was announced again): a new clock origin.
                        _resumeAfterGap = _anchored;
                        break;
                    case MediaEventKind.Frame:
                        await SendFrameAsync(evt.Unit, ct).ConfigureAwait(false);
                        ReportDrops();
                        if (_connection.Time.GetElapsedTime(lastReport) >= _connection.Options.SenderReportInterval)
                        {
                            lastReport = _connection.Time.GetTimestamp();
                            await SendSenderReportsAsync(ct).ConfigureAwait(false);
                        }
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped (PAUSE, TEARDOWN), or the connection was aborted under a write: a viewer that stopped
            // reading is cut off by the write timeout, which is no error of ours.
        }
        catch (ObjectDisposedException)
        {
            // The subscription or the connection closed under us: the session is ending.
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            _connection.Abort("write failed: " + e.Message);
        }
        catch (Exception e)
        {
            // A bug in packetizing one stream must end this viewer only, never the relay.
            _connection.Fail(e);
        }
    }

    /// <summary>Moves frames the viewer skipped since the last call into the metric. Called by the
    /// sender after each frame and by the connection's watchdog, because a viewer that stopped
    /// reading keeps its sender blocked while its subscription drops.</summary>
    public void ReportDrops()
    {
        lock (_dropLock)
        {
            if (_subscription is not { } subscription) return;
            var dropped = subscription.DroppedFrames;
            if (dropped > _droppedReported)
            {
                _metrics.FramesDropped.Add(dropped - _droppedReported);
                _droppedReported = dropped;
            }
        }
    }

    // A new configuration of the same codecs (new SPS/PPS, new size) continues the session with
    // the parameter sets sent in band before the next keyframe; anything else (another codec, a
    // track added or removed) cannot be expressed to a client that already has the SDP. A new
    // configuration is announced by a source that (re)started, so its clock may start anew too.
    private bool TryContinueWith(IReadOnlyList<TrackInfo> tracks)
    {
        _resumeAfterGap = _anchored;
        if (tracks.Count != Tracks.Count) return false;
        for (var i = 0; i < tracks.Count; i++)
        {
            if (tracks[i].Codec != Tracks[i].Codec || tracks[i].ClockRate != Tracks[i].ClockRate) return false;
            if (Outputs[i] is { } o && !o.Packetizer.TryUpdateTrack(tracks[i])) return false;
        }
        Tracks = tracks;
        return true;
    }

    private async ValueTask SendFrameAsync(AccessUnit unit, CancellationToken ct)
    {
        if ((uint)unit.Track >= (uint)Outputs.Length || Outputs[unit.Track] is not { } output) return;
        if (!_anchored)
        {
            Anchor(unit);
            _anchored = true;
        }
        else if (_resumeAfterGap || RestartsClock(output, unit))
        {
            // Whatever the device said (StreamEnd, a new announcement, or nothing at all), a source
            // whose clock restarted must not take the viewer's RTP time back or leap it ahead.
            Resume(unit);
            _resumeAfterGap = false;
        }
        var before = output.BytesSent;
        if (output.IsInterleaved)
        {
            await _connection.WriteAsync(output.Packetizer, unit, output.RtpHandler, ct).ConfigureAwait(false);
        }
        else
        {
            output.Packetizer.Packetize(unit, output.RtpHandler);
        }
        output.LastSentAt = _connection.Time.GetTimestamp();
        output.LastDts = unit.Dts;
        FramesSent++;
        _metrics.FramesSent.Add(1);
        _metrics.BytesSent.Add(output.BytesSent - before);
    }

    // RTP-Info announced each track's initial random offset as its rtptime (RFC 2326 §12.33). The
    // first frame sent, whichever track it is on, defines media time zero: every track's offset is
    // shifted so that instant maps to its announced rtptime, which keeps the tracks in sync.
    private void Anchor(in AccessUnit first)
    {
        var anchorClock = Tracks[first.Track].ClockRate;
        foreach (var o in Outputs)
        {
            if (o is null) continue;
            var ticks = (long)((Int128)first.Pts * o.Packetizer.ClockRate / anchorClock);
            o.Packetizer.TimestampOffset = unchecked(o.Packetizer.TimestampOffset - (uint)ticks);
        }
    }

    // DTS never goes back on a track, B-frames or not (DecodeTimestampGenerator), and advances with
    // the sampling clock: one that goes back or leaps far ahead comes from a restarted clock.
    private static bool RestartsClock(RtspTrackOutput output, in AccessUnit unit) =>
        output.LastDts is { } last
        && (unit.Dts < last || unit.Dts - last > (long)(MaxDtsLeapSeconds * output.Packetizer.ClockRate));

    // After the device was offline, or its source restarted, its clock may have restarted: continue
    // every track's RTP time from where it stopped, advanced by the wallclock time of the gap, so
    // clients see a pause rather than a jump back in time (RFC 3550 §5.1: timestamps advance with
    // the sampling clock). It continues from the last decode time, not the last (presentation)
    // timestamp: with B-frames that one may lie ahead, and the new pictures' decode times must
    // follow the old ones. Every track's last DTS starts afresh, so the others don't re-anchor again.
    private void Resume(in AccessUnit first)
    {
        var anchorClock = Tracks[first.Track].ClockRate;
        foreach (var o in Outputs)
        {
            if (o is null || o.Packetizer.PacketCount == 0) continue;
            var p = o.Packetizer;
            var last = o.LastDts is { } dts ? p.ToRtpTimestamp(dts) : p.LastTimestamp;
            var target = unchecked(last + (uint)(_connection.Time.GetElapsedTime(o.LastSentAt).TotalSeconds * p.ClockRate));
            var ticks = (long)((Int128)first.Dts * p.ClockRate / anchorClock);
            p.TimestampOffset = unchecked(target - (uint)ticks);
            o.LastDts = null;
        }
    }

    /// <summary>The rtptime to announce in RTP-Info for a track before anything was sent.</summary>
    public uint InitialRtpTime(int track)
    {
        var p = Outputs[track]!.Packetizer;
        // After a PAUSE the offsets are anchored already; the next packet continues from the last one.
        return _anchored ? p.LastTimestamp : p.TimestampOffset;
    }

    // RFC 3550 §6.4.1: a sender report pairs a wallclock (NTP) time with the RTP time of the same
    // instant, which is what lets a client line audio up with video. The RTP time of "now" is the
    // last packet's timestamp advanced by the time since it was sent.
    private async ValueTask SendSenderReportsAsync(CancellationToken ct)
    {
        var now = _connection.Time.GetUtcNow();
        var ntp = ToNtp(now);
        foreach (var o in Outputs)
        {
            if (o is null || o.Packetizer.PacketCount == 0) continue;
            var since = _connection.Time.GetElapsedTime(o.LastSentAt);
            var rtpNow = unchecked(o.Packetizer.LastTimestamp + (uint)(since.TotalSeconds * o.Packetizer.ClockRate));
            var sr = new RtcpPacket
            {
                PacketType = RtcpPacket.SenderReportType,
                Ssrc = o.Packetizer.Ssrc,
                NtpTimestamp = ntp,
                RtpTimestamp = rtpNow,
                PacketCount = unchecked((uint)o.Packetizer.PacketCount),
                OctetCount = unchecked((uint)o.Packetizer.OctetCount),
            }.ToArray();
            await _connection.WriteRtcpAsync(o, sr, ct).ConfigureAwait(false);
        }
    }

    /// <summary>NTP timestamp format (RFC 3550 §4): seconds since 1900 in the high word, fraction in the low word.</summary>
    internal static ulong ToNtp(DateTimeOffset time)
    {
        const long UnixToNtpSeconds = 2_208_988_800;
        var ticks = time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var seconds = (ulong)(ticks / TimeSpan.TicksPerSecond + UnixToNtpSeconds);
        var fraction = (ulong)(ticks % TimeSpan.TicksPerSecond) * (1UL << 32) / TimeSpan.TicksPerSecond;
        return (seconds << 32) | fraction;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await StopAsync().ConfigureAwait(false);
        _metrics.RemoveViewer(Stream.DeviceId, Stream.Camera, _viewerNumber);
        foreach (var o in Outputs) o?.Dispose();
        _metrics.SessionClosed();
    }
}
