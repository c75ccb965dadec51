using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Pinhole.Testing.Media;
using Pinhole.Transport.Media;

namespace Pinhole.Benchmarks.Scale;

/// <summary>
/// The recorded stream every simulated device sends: H.264 made once by ffmpeg (lavfi testsrc2,
/// libx264, 25 fps, a keyframe every second, no B-frames, about 1 Mbit/s), split into access units.
/// Before sending, each frame gets a stamp in front of its slices: an SEI NAL unit
/// (user_data_unregistered, H.264 §D.1.7) carrying the device, the frame's sequence number and the
/// load generator's clock when it was sent. The relay forwards SEI like any other NAL unit, so a
/// viewer reads the stamp back and knows which frame arrived and how long it took.
/// </summary>
internal sealed class StampedClip
{
    /// <summary>Frames per second of the clip.</summary>
    public const int Fps = 25;

    // A fixed UUID marking our SEI payload (no zero bytes, so no emulation prevention is ever needed).
    private static readonly byte[] Uuid = [0x70, 0x69, 0x6E, 0x68, 0x6F, 0x6C, 0x65, 0x2D, 0x6C, 0x6F, 0x61, 0x64, 0x62, 0x65, 0x6E, 0x63];

    // The stamp's numbers are written as hexadecimal ASCII: never a zero byte, so the SEI payload needs
    // no emulation prevention (§7.4.1) and a reader can find it in the RTP payload as it is.
    private const int DeviceDigits = 8, SequenceDigits = 16, ClockDigits = 16;

    /// <summary>Payload of the SEI message: UUID, then device, sequence and clock in hex.</summary>
    private const int PayloadSize = 16 + DeviceDigits + SequenceDigits + ClockDigits;

    /// <summary>The SEI NAL unit: header, payload type 5, payload size, payload, rbsp trailing bits.</summary>
    public const int SeiNalSize = 1 + 1 + 1 + PayloadSize + 1;

    private StampedClip(TrackInfo track, IReadOnlyList<AccessUnit> units, double bitsPerSecond)
    {
        Track = track;
        Units = units;
        BitsPerSecond = bitsPerSecond;
    }

    /// <summary>The video track (SPS and PPS), announced by every device.</summary>
    public TrackInfo Track { get; }

    /// <summary>The clip's access units in order (4-byte length prefixes), PTS from 0 at 90 kHz.</summary>
    public IReadOnlyList<AccessUnit> Units { get; }

    /// <summary>Measured bit rate of the clip's access units.</summary>
    public double BitsPerSecond { get; }

    /// <summary>Length of one pass through the clip in 90 kHz ticks.</summary>
    public long Duration90k => Units.Count * 90_000L / Fps;

    /// <summary>Encodes <paramref name="seconds"/> of test picture at about <paramref name="kbps"/> with ffmpeg.</summary>
    /// <exception cref="InvalidOperationException">ffmpeg is missing or failed.</exception>
    public static StampedClip Record(int seconds = 10, int kbps = 1000, int width = 640, int height = 360)
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-scale-clip-");
        try
        {
            var file = Path.Combine(dir.FullName, "clip.h264");
            var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in string.Create(CultureInfo.InvariantCulture,
                         $"-hide_banner -loglevel error -f lavfi -i testsrc2=size={width}x{height}:rate={Fps} -t {seconds} -an -c:v libx264 -preset veryfast -tune zerolatency -g {Fps} -bf 0 -b:v {kbps}k -maxrate {kbps}k -bufsize {kbps}k -pix_fmt yuv420p -f h264 {file}").Split(' '))
                psi.ArgumentList.Add(a);
            Process ffmpeg;
            try
            {
                ffmpeg = Process.Start(psi) ?? throw new InvalidOperationException("ffmpeg did not start");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException("ffmpeg is not installed (Debian package ffmpeg)", e);
            }
            using (ffmpeg)
            {
                var errors = ffmpeg.StandardError.ReadToEnd();
                ffmpeg.WaitForExit();
                if (ffmpeg.ExitCode != 0) throw new InvalidOperationException($"ffmpeg failed ({ffmpeg.ExitCode}): {errors}");
            }
            var (track, units) = TestClips.SplitH264(File.ReadAllBytes(file), width, height, Fps);
            var bits = units.Sum(u => (double)u.Data.Length) * 8 / (units.Count / (double)Fps);
            return new StampedClip(track, units, bits);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Writes the stamp NAL unit (with its 4-byte length) followed by <paramref name="unit"/>'s data into
    /// <paramref name="destination"/> and returns the bytes written.
    /// </summary>
    public static int WriteStamped(Span<byte> destination, ReadOnlySpan<byte> unit, uint device, ulong sequence, long clock)
    {
        BinaryPrimitives.WriteInt32BigEndian(destination, SeiNalSize);
        var sei = destination.Slice(4, SeiNalSize);
        sei[0] = 0x06; // nal_ref_idc 0, nal_unit_type 6 (SEI)
        sei[1] = 5;    // payloadType: user_data_unregistered
        sei[2] = PayloadSize;
        Uuid.CopyTo(sei[3..]);
        var text = sei[19..];
        device.TryFormat(text[..DeviceDigits], out _, "x8", CultureInfo.InvariantCulture);
        sequence.TryFormat(text.Slice(DeviceDigits, SequenceDigits), out _, "x16", CultureInfo.InvariantCulture);
        ((ulong)clock).TryFormat(text.Slice(DeviceDigits + SequenceDigits, ClockDigits), out _, "x16", CultureInfo.InvariantCulture);
        sei[^1] = 0x80; // rbsp_stop_one_bit
        unit.CopyTo(destination[(4 + SeiNalSize)..]);
        return 4 + SeiNalSize + unit.Length;
    }

    /// <summary>
    /// Reads a stamp from one NAL unit as it arrives in an RTP packet (single NAL unit packet,
    /// RFC 6184 §5.6): false when it is not our SEI.
    /// </summary>
    public static bool TryReadStamp(ReadOnlySpan<byte> nal, out uint device, out ulong sequence, out long clock)
    {
        device = 0;
        sequence = 0;
        clock = 0;
        if (nal.Length < SeiNalSize - 1 || (nal[0] & 0x1F) != 6 || nal[1] != 5 || nal[2] != PayloadSize || !nal.Slice(3, 16).SequenceEqual(Uuid)) return false;
        var text = nal.Slice(19, DeviceDigits + SequenceDigits + ClockDigits);
        if (!uint.TryParse(text[..DeviceDigits], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out device)
            || !ulong.TryParse(text.Slice(DeviceDigits, SequenceDigits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out sequence)
            || !ulong.TryParse(text.Slice(DeviceDigits + SequenceDigits, ClockDigits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var c))
            return false;
        clock = (long)c;
        return true;
    }
}
