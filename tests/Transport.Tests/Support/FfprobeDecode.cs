using System.Buffers.Binary;
using System.Diagnostics;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Tests.Support;

internal static class FfprobeDecode
{
    /// <summary>Writes AVCC access units as an Annex-B elementary stream, parameter sets before each keyframe.</summary>
    public static byte[] ToAnnexB(TrackInfo track, IEnumerable<AccessUnit> units)
    {
        var output = new MemoryStream();
        byte[] startCode = [0, 0, 0, 1];
        foreach (var u in units)
        {
            // Parameter sets before a keyframe that does not carry them in-band (SDP-only cameras).
            if (u.IsKeyframe && !HasParameterSets(track.Codec, u.Data.Span))
                foreach (var ps in track.ParameterSets) { output.Write(startCode); output.Write(ps.Span); }
            var data = u.Data.Span;
            while (data.Length > 0)
            {
                var n = BinaryPrimitives.ReadInt32BigEndian(data);
                Assert.InRange(n, 1, data.Length - 4); // valid AVCC framing
                output.Write(startCode);
                output.Write(data.Slice(4, n));
                data = data[(4 + n)..];
            }
        }
        return output.ToArray();
    }

    private static bool HasParameterSets(MediaCodec codec, ReadOnlySpan<byte> avcc)
    {
        while (avcc.Length > 4)
        {
            var n = BinaryPrimitives.ReadInt32BigEndian(avcc);
            var type = codec == MediaCodec.H264 ? avcc[4] & 0x1f : (avcc[4] >> 1) & 0x3f;
            if (codec == MediaCodec.H264 ? type == 7 : type == 33) return true;
            avcc = avcc[(4 + n)..];
        }
        return false;
    }

    /// <summary>Decodes every frame with ffprobe; returns (frames decoded, codec, width, height, stderr).</summary>
    public static (int Frames, string Codec, int Width, int Height, string Errors) CountFrames(byte[] elementaryStream, string format)
    {
        var path = Path.Combine(Path.GetTempPath(), $"pinhole-{Guid.NewGuid():N}.{format}");
        File.WriteAllBytes(path, elementaryStream);
        try
        {
            var psi = new ProcessStartInfo("ffprobe") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-v", "error", "-f", format, "-count_frames", "-select_streams", "v:0",
                         "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", path })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdoutTask = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEnd();
            var stdout = stdoutTask.GetAwaiter().GetResult();
            Assert.True(p.WaitForExit(60_000), "ffprobe hung");
            var f = stdout.Trim().Split(',');
            Assert.True(f.Length == 4, $"ffprobe said: {stdout} {stderr}");
            return (int.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture), f[0],
                int.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), stderr);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
