// Shared by Transport.Tests, Relay.Tests and the benchmarks (linked as source): real encoded media as
// access units, and a real-time feeder. The clips come from ffmpeg at test time (lavfi testsrc + libx264,
// sine + aac), split by the small Annex-B and ADTS splitters below, so what the muxer and the browser see
// is what an encoder really produces.
using System.Diagnostics;
using Pinhole.Transport.Media;

namespace Pinhole.Testing.Media;

/// <summary>A short clip of access units with its tracks; timestamps start at 0.</summary>
internal sealed record TestClip(IReadOnlyList<TrackInfo> Tracks, IReadOnlyList<AccessUnit> Units, TimeSpan Duration)
{
    public IEnumerable<AccessUnit> Video => Units.Where(u => Tracks[u.Track].IsVideo);
}

/// <summary>How late the feeder delivered frames (a loaded machine starves it; frames then arrive in a burst).</summary>
internal sealed class FeedStats
{
    private long _maxLateTicks;

    public void Delivered(TimeSpan late)
    {
        var ticks = late.Ticks;
        long seen;
        while (ticks > (seen = Interlocked.Read(ref _maxLateTicks)) && Interlocked.CompareExchange(ref _maxLateTicks, ticks, seen) != seen) { }
    }

    /// <summary>Set to drop everything up to the next video keyframe (a gap in the timeline); cleared when it comes.</summary>
    public volatile bool SkipToKeyframe;

    /// <summary>Access units dropped by <see cref="SkipToKeyframe"/>.</summary>
    public int Skipped;

    /// <summary>The worst lateness since the last call, and starts over.</summary>
    public TimeSpan TakeMaxLateness() => TimeSpan.FromTicks(Interlocked.Exchange(ref _maxLateTicks, 0));
}

internal static class TestClips
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, TestClip> Cache = [];

    /// <summary>H.264 (640x360, 25 fps, a keyframe every second, no B-frames), optionally with AAC-LC (48 kHz mono), <paramref name="seconds"/> long.</summary>
    public static TestClip H264(int seconds = 4, bool withAudio = false, int width = 640, int height = 360)
    {
        var key = $"{seconds}-{withAudio}-{width}x{height}";
        lock (Gate)
        {
            if (Cache.TryGetValue(key, out var cached)) return cached;
            var dir = Directory.CreateTempSubdirectory("pinhole-clip-");
            try
            {
                var h264 = Path.Combine(dir.FullName, "v.h264");
                RunFfmpeg($"-f lavfi -i testsrc=size={width}x{height}:rate=25 -t {seconds} -c:v libx264 -preset veryfast -tune zerolatency -g 25 -bf 0 -pix_fmt yuv420p -f h264 {h264}");
                var (video, units) = SplitH264(File.ReadAllBytes(h264), width, height, fps: 25);
                var tracks = new List<TrackInfo> { video };
                if (withAudio)
                {
                    var aac = Path.Combine(dir.FullName, "a.aac");
                    RunFfmpeg($"-f lavfi -i sine=frequency=440:sample_rate=48000 -t {seconds} -c:a aac -b:a 64k -ac 1 -f adts {aac}");
                    var (audio, frames) = SplitAdts(File.ReadAllBytes(aac), track: 1);
                    tracks.Add(audio);
                    // Keep the loop seamless: no audio frame may reach into the next loop.
                    frames = [.. frames.Where(f => f.Dts + 1024 <= (long)seconds * audio.ClockRate)];
                    // Interleave by time, the way a live source delivers them.
                    units = [.. units.Concat(frames).OrderBy(u => (double)u.Dts / tracks[u.Track].ClockRate).ThenBy(u => u.Track)];
                }
                var clip = new TestClip(tracks, units, TimeSpan.FromSeconds(seconds));
                Cache[key] = clip;
                return clip;
            }
            finally
            {
                dir.Delete(recursive: true);
            }
        }
    }

    /// <summary>
    /// Splits an Annex-B H.264 byte stream into access units with 4-byte length prefixes (what
    /// <see cref="AccessUnit"/> holds). SPS and PPS go to the track; AUDs are dropped.
    /// </summary>
    public static (TrackInfo Track, List<AccessUnit> Units) SplitH264(byte[] annexB, int width, int height, int fps)
    {
        var nals = SplitAnnexB(annexB);
        byte[]? sps = null, pps = null;
        var units = new List<AccessUnit>();
        var current = new List<byte[]>();
        var hasVcl = false;
        var key = false;
        void Flush()
        {
            if (!hasVcl) { current.Clear(); return; }
            var size = current.Sum(n => n.Length + 4);
            var data = new byte[size];
            var o = 0;
            foreach (var n in current)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(o), n.Length);
                n.CopyTo(data, o + 4);
                o += n.Length + 4;
            }
            long t = units.Count * 90_000L / fps;
            units.Add(new AccessUnit(0, t, t, key, data));
            current.Clear();
            hasVcl = key = false;
        }
        foreach (var nal in nals)
        {
            var type = nal[0] & 0x1F;
            var isVcl = type is >= 1 and <= 5;
            // A new access unit starts at a non-VCL NAL after a picture, or at a slice with first_mb_in_slice == 0.
            if (hasVcl && (!isVcl || (nal.Length > 1 && (nal[1] & 0x80) != 0))) Flush();
            switch (type)
            {
                case 7: sps ??= nal; break;
                case 8: pps ??= nal; break;
                case 9: break;
                default:
                    current.Add(nal);
                    if (isVcl) hasVcl = true;
                    if (type == 5) key = true;
                    break;
            }
        }
        Flush();
        if (sps is null || pps is null) throw new InvalidDataException("no SPS/PPS in the stream");
        var track = new TrackInfo { Codec = MediaCodec.H264, ClockRate = 90_000, ParameterSets = [sps, pps], Width = width, Height = height };
        return (track, units);
    }

    /// <summary>H.265 (libx265, 25 fps, no B-frames) as access units; VPS/SPS/PPS go to the track.</summary>
    public static TestClip H265(int seconds = 2, int width = 640, int height = 360)
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-clip-");
        try
        {
            var file = Path.Combine(dir.FullName, "v.h265");
            RunFfmpeg($"-f lavfi -i testsrc=size={width}x{height}:rate=25 -t {seconds} -c:v libx265 -preset ultrafast -x265-params log-level=error:bframes=0:keyint=25 -pix_fmt yuv420p -f hevc {file}");
            var parameterSets = new List<ReadOnlyMemory<byte>>();
            var units = new List<AccessUnit>();
            var current = new List<byte[]>();
            var key = false;
            void Flush()
            {
                if (current.Count == 0) return;
                var data = current.SelectMany(n => BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(n.Length)).Concat(n)).ToArray();
                long t = units.Count * 3600L;
                units.Add(new AccessUnit(0, t, t, key, data));
                current.Clear();
                key = false;
            }
            foreach (var nal in SplitAnnexB(File.ReadAllBytes(file)))
            {
                var type = (nal[0] >> 1) & 0x3F;
                if (type is >= 32 and <= 34) { if (parameterSets.Count < 3) parameterSets.Add(nal); continue; }
                if (type == 35) continue;
                // first_slice_segment_in_pic_flag starts a new picture (H.265 §7.4.7.1).
                if (type < 32 && nal.Length > 2 && (nal[2] & 0x80) != 0) Flush();
                if (type < 32) { current.Add(nal); key |= type is >= 16 and <= 23; }
            }
            Flush();
            var track = new TrackInfo { Codec = MediaCodec.H265, ClockRate = 90_000, ParameterSets = parameterSets, Width = width, Height = height };
            return new TestClip([track], units, TimeSpan.FromSeconds(seconds));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>NAL units of an Annex-B stream, without start codes.</summary>
    public static List<byte[]> SplitAnnexB(ReadOnlySpan<byte> s)
    {
        var starts = new List<(int Payload, int Code)>();
        for (var i = 0; i + 2 < s.Length; i++)
        {
            if (s[i] == 0 && s[i + 1] == 0 && s[i + 2] == 1)
            {
                var code = i > 0 && s[i - 1] == 0 ? i - 1 : i;
                starts.Add((i + 3, code));
                i += 2;
            }
        }
        var nals = new List<byte[]>();
        for (var k = 0; k < starts.Count; k++)
        {
            var end = k + 1 < starts.Count ? starts[k + 1].Code : s.Length;
            if (end > starts[k].Payload) nals.Add(s[starts[k].Payload..end].ToArray());
        }
        return nals;
    }

    /// <summary>Splits ADTS (ISO/IEC 13818-7 §6.2) into raw AAC frames and builds the AudioSpecificConfig.</summary>
    public static (TrackInfo Track, List<AccessUnit> Units) SplitAdts(byte[] adts, int track)
    {
        int[] rates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
        var units = new List<AccessUnit>();
        int profile = 0, rateIndex = 0, channels = 0;
        var p = 0;
        while (p + 7 <= adts.Length)
        {
            if (adts[p] != 0xFF || (adts[p + 1] & 0xF0) != 0xF0) throw new InvalidDataException($"lost ADTS sync at {p}");
            var protectionAbsent = (adts[p + 1] & 1) == 1;
            profile = adts[p + 2] >> 6;
            rateIndex = (adts[p + 2] >> 2) & 0x0F;
            channels = ((adts[p + 2] & 1) << 2) | (adts[p + 3] >> 6);
            var length = ((adts[p + 3] & 3) << 11) | (adts[p + 4] << 3) | (adts[p + 5] >> 5);
            var header = protectionAbsent ? 7 : 9;
            long t = units.Count * 1024L;
            units.Add(new AccessUnit(track, t, t, true, adts.AsSpan(p + header, length - header).ToArray()));
            p += length;
        }
        var objectType = profile + 1;
        var asc = new byte[] { (byte)((objectType << 3) | (rateIndex >> 1)), (byte)(((rateIndex & 1) << 7) | (channels << 3)) };
        var rate = rates[rateIndex];
        var info = new TrackInfo { Codec = MediaCodec.Aac, ClockRate = rate, SampleRate = rate, Channels = channels, AudioSpecificConfig = asc };
        return (info, units);
    }

    /// <summary>
    /// Feeds a clip to a sink in real time, looping, with timestamps that keep counting up across loops
    /// (each loop starts at a keyframe). This is the switch point for end-to-end tests: a real camera
    /// source delivers to the same <see cref="IMediaSink"/>.
    /// </summary>
    private const int MinimumGapFrames = 3;

    public static async Task FeedLiveAsync(IMediaSink sink, TestClip clip, CancellationToken cancellationToken, TimeProvider? time = null, FeedStats? stats = null)
    {
        time ??= TimeProvider.System;
        sink.OnTracks(clip.Tracks);
        var start = time.GetTimestamp();
        var skippedVideo = 0;
        for (long loop = 0; ; loop++)
        {
            foreach (var u in clip.Units)
            {
                var clock = clip.Tracks[u.Track].ClockRate;
                var offset = (long)(loop * clip.Duration.TotalSeconds * clock);
                var due = TimeSpan.FromSeconds(loop * clip.Duration.TotalSeconds + (double)u.Dts / clock);
                var wait = due - time.GetElapsedTime(start);
                if (wait > TimeSpan.Zero) await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                stats?.Delivered(time.GetElapsedTime(start) - due);
                if (stats is { SkipToKeyframe: true })
                {
                    // What the relay does to a viewer that fell behind: nothing until the next video keyframe.
                    // A keyframe that comes before a few video frames were dropped does not end it: Chromium
                    // treats a hole of up to about two frame durations as contiguous, so a one-frame skip
                    // would leave no gap in the buffered ranges at all.
                    var video = clip.Tracks[u.Track].IsVideo;
                    if (!(video && u.IsKeyframe) || skippedVideo < MinimumGapFrames)
                    {
                        stats.Skipped++;
                        if (video) skippedVideo++;
                        continue;
                    }
                    stats.SkipToKeyframe = false;
                    skippedVideo = 0;
                }
                sink.OnAccessUnit(u with { Pts = u.Pts + offset, Dts = u.Dts + offset });
            }
        }
    }

    private static void RunFfmpeg(string args)
    {
        var psi = new ProcessStartInfo("ffmpeg", "-nostdin -v error -y " + args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException("ffmpeg took too long"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg {args} failed: {err.Result}");
    }
}
