using System.Buffers.Binary;
using System.Buffers;
using System.Diagnostics;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>One elementary stream split into access units, with how far apart they are.</summary>
internal sealed record TestTrack(TrackInfo Info, IReadOnlyList<AccessUnit> Units, long FrameDuration);

/// <summary>
/// Real encoded media for the RTSP tests, made by ffmpeg from its lavfi test sources once per
/// test run and split into access units (with the shared Annex B reader) the way the uplink delivers them (AVCC, no in-band
/// parameter sets, so the packetizer's re-send before keyframes is exercised).
/// </summary>
internal static class TestMedia
{
    // Shared by test runs: files are named after the exact ffmpeg arguments, so they are made once.
    private static readonly string Dir = Path.Combine(Path.GetTempPath(), "pinhole-rtsp-server-tests");
    private static readonly Lazy<TestTrack> LazyH264 = new(() => LoadVideo(MediaCodec.H264, "h264", "-c:v libx264 -preset ultrafast -bf 0 -g 25 -pix_fmt yuv420p -f h264"));
    private static readonly Lazy<TestTrack> LazyH265 = new(() => LoadVideo(MediaCodec.H265, "hevc", "-c:v libx265 -preset ultrafast -x265-params bframes=0:keyint=25:min-keyint=25:log-level=error -pix_fmt yuv420p -f hevc"));
    // About 5.5 Mbit/s of noisy 640x480: fills socket buffers within a fraction of a second.
    private static readonly Lazy<TestTrack> LazyH264Busy = new(() => LoadVideo(MediaCodec.H264, "h264", "-vf noise=alls=15:allf=t -c:v libx264 -preset ultrafast -crf 28 -bf 0 -g 25 -pix_fmt yuv420p -f h264", 640, 480, "testsrc2"));
    private static readonly Lazy<TestTrack> LazyAac = new(LoadAac);
    private static readonly Lazy<TestTrack> LazyAlaw = new(() => LoadG711(MediaCodec.PcmAlaw, "alaw"));
    private static readonly Lazy<TestTrack> LazyMulaw = new(() => LoadG711(MediaCodec.PcmMulaw, "mulaw"));

    public const int Width = 320;
    public const int Height = 240;

    public static TestTrack H264 => LazyH264.Value;
    public static TestTrack H265 => LazyH265.Value;
    public static TestTrack H264Busy => LazyH264Busy.Value;
    public static TestTrack Aac => LazyAac.Value;
    public static TestTrack Alaw => LazyAlaw.Value;
    public static TestTrack Mulaw => LazyMulaw.Value;

    private static string Encode(string name, string input, string args)
    {
        Directory.CreateDirectory(Dir);
        var key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(input + "|" + args)))[..16];
        var path = Path.Combine(Dir, key + "-" + name);
        if (File.Exists(path)) return path;
        // Encode to a private name and move it in whole, so a parallel run never reads half a file.
        var temp = Path.Combine(Dir, $"{key}-{Environment.ProcessId}-{Guid.NewGuid():N}-{name}");
        var (code, _, stderr) = Run("ffmpeg", $"-hide_banner -loglevel error -y {input} -t 2 {args} {temp}");
        if (code != 0) throw new InvalidOperationException("ffmpeg failed: " + stderr);
        File.Move(temp, path, overwrite: true);
        return path;
    }

    internal static (int ExitCode, string Stdout, string Stderr) Run(string exe, string args, int timeoutMs = 60_000)
    {
        using var p = Process.Start(new ProcessStartInfo(exe, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        })!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static TestTrack LoadVideo(MediaCodec codec, string ext, string args, int width = Width, int height = Height, string source = "testsrc")
    {
        var path = Encode("video." + ext, $"-f lavfi -i {source}=size={width}x{height}:rate=25", args);
        var nals = SplitAnnexB(File.ReadAllBytes(path));
        var h265 = codec == MediaCodec.H265;
        int Type(byte[] n) => h265 ? (n[0] >> 1) & 0x3F : n[0] & 0x1F;
        bool IsParameterSet(byte[] n) => h265 ? Type(n) is 32 or 33 or 34 : Type(n) is 7 or 8;
        bool IsKey(byte[] n) => h265 ? Type(n) is >= 16 and <= 21 : Type(n) == 5;

        var parameterSets = new List<ReadOnlyMemory<byte>>();
        foreach (var t in h265 ? new[] { 32, 33, 34 } : new[] { 7, 8 })
            parameterSets.Add(nals.First(n => Type(n) == t));

        // Group NAL units into access units with the shared boundary rules (what the edge does for
        // an exec: pipe), then leave the parameter sets out: the uplink carries them in TrackInfo.
        var units = new List<AccessUnit>();
        var current = new List<byte[]>();
        var hasVcl = false;
        void Flush()
        {
            var picture = current.Where(n => !IsParameterSet(n)).ToList();
            current = [];
            hasVcl = false;
            if (picture.Count == 0) return;
            var pts = units.Count * 3600L;
            units.Add(new AccessUnit(0, pts, pts, picture.Any(IsKey), Avcc(picture)));
        }
        foreach (var n in nals)
        {
            if (AccessUnitBoundary.StartsNewAccessUnit(codec, n, hasVcl)) Flush();
            current.Add(n);
            hasVcl |= AccessUnitBoundary.IsVcl(codec, n);
        }
        Flush();
        var info = new TrackInfo { Codec = codec, ClockRate = 90_000, ParameterSets = parameterSets, Width = width, Height = height };
        return new TestTrack(info, units, 3600);
    }

    private static List<byte[]> SplitAnnexB(byte[] data)
    {
        var nals = new List<byte[]>();
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(data));
        while (AnnexBReader.TryReadNalUnit(ref reader, isFinal: true, out var nal)) nals.Add(nal.ToArray());
        return nals;
    }

    private static byte[] Avcc(List<byte[]> nals)
    {
        var b = new byte[nals.Sum(n => n.Length + 4)];
        var at = 0;
        foreach (var n in nals)
        {
            BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(at), n.Length);
            n.CopyTo(b, at + 4);
            at += n.Length + 4;
        }
        return b;
    }

    private static TestTrack LoadAac()
    {
        var path = Encode("audio.aac", "-f lavfi -i sine=frequency=440:sample_rate=48000", "-ac 2 -c:a aac -b:a 96k -f adts");
        var data = File.ReadAllBytes(path);
        var units = new List<AccessUnit>();
        byte[]? asc = null;
        for (var at = 0; at + 7 <= data.Length;)
        {
            // ISO/IEC 14496-3 §1.A.2 adts_fixed_header / adts_variable_header.
            if (data[at] != 0xFF || (data[at + 1] & 0xF0) != 0xF0) throw new InvalidDataException("ADTS sync lost");
            var protectionAbsent = (data[at + 1] & 1) == 1;
            var profile = data[at + 2] >> 6;
            var sfi = (data[at + 2] >> 2) & 0xF;
            var channels = ((data[at + 2] & 1) << 2) | (data[at + 3] >> 6);
            var frameLength = ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5);
            var header = protectionAbsent ? 7 : 9;
            // AudioSpecificConfig: audioObjectType (5 bits) = profile + 1, samplingFrequencyIndex (4), channelConfiguration (4).
            asc ??= [(byte)(((profile + 1) << 3) | (sfi >> 1)), (byte)(((sfi & 1) << 7) | (channels << 3))];
            var pts = units.Count * 1024L;
            units.Add(new AccessUnit(0, pts, pts, true, data.AsMemory(at + header, frameLength - header)));
            at += frameLength;
        }
        var info = new TrackInfo { Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 2, AudioSpecificConfig = asc };
        return new TestTrack(info, units, 1024);
    }

    private static TestTrack LoadG711(MediaCodec codec, string format)
    {
        var path = Encode("audio." + format, "-f lavfi -i sine=frequency=440:sample_rate=8000", $"-ac 1 -ar 8000 -c:a pcm_{format} -f {format}");
        var data = File.ReadAllBytes(path);
        var units = new List<AccessUnit>();
        // 40 ms per access unit: the packetizer splits each into two 20 ms packets.
        for (var at = 0; at + 320 <= data.Length; at += 320)
            units.Add(new AccessUnit(0, at, at, true, data.AsMemory(at, 320)));
        var info = new TrackInfo { Codec = codec, ClockRate = 8000, SampleRate = 8000, Channels = 1 };
        return new TestTrack(info, units, 320);
    }
}
