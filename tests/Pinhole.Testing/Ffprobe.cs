using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>How RTSP media reaches the probing client.</summary>
public enum RtspTransport
{
    /// <summary>RTP interleaved on the RTSP TCP connection.</summary>
    Tcp,

    /// <summary>RTP over UDP.</summary>
    Udp,
}

/// <summary>What <see cref="Ffprobe.ProbeAsync"/> reads.</summary>
public sealed record ProbeOptions
{
    /// <summary>RTSP transport (TCP unless set).</summary>
    public RtspTransport Transport { get; init; } = RtspTransport.Tcp;

    /// <summary>How many video frames to decode (audio is decoded alongside); 0 reads stream headers only.</summary>
    public int VideoFrames { get; init; } = 25;

    /// <summary>The whole probe's time budget; past it the tools are killed and <see cref="ProbeResult.TimedOut"/> is set.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Run ffprobe/ffmpeg inside this network namespace (e.g. <see cref="NatTopology.Wan"/>), or null for the test's own.</summary>
    public string? NetworkNamespace { get; init; }
}

/// <summary>One stream as ffprobe describes it and as ffmpeg decoded it.</summary>
/// <param name="Index">The stream index in the session.</param>
/// <param name="CodecType">"video" or "audio".</param>
/// <param name="CodecName">FFmpeg's codec name: h264, hevc, aac, pcm_alaw, pcm_mulaw …</param>
/// <param name="Width">Video width, or null.</param>
/// <param name="Height">Video height, or null.</param>
/// <param name="SampleRate">Audio sample rate, or null.</param>
/// <param name="Channels">Audio channels, or null.</param>
/// <param name="PacketsRead">Packets ffmpeg read for this stream (0 when not decoded).</param>
/// <param name="FramesDecoded">Frames ffmpeg decoded for this stream (0 when not decoded).</param>
public sealed record ProbeStream(int Index, string CodecType, string CodecName, int? Width, int? Height, int? SampleRate, int? Channels, int PacketsRead, int FramesDecoded);

/// <summary>One demuxed packet (a whole access unit for video) as ffprobe reports it.</summary>
/// <param name="StreamIndex">The stream it belongs to.</param>
/// <param name="CodecType">"video" or "audio".</param>
/// <param name="PtsTime">Presentation time in seconds, or null when ffprobe reports N/A.</param>
/// <param name="DtsTime">Decoding time in seconds, or null.</param>
/// <param name="Size">Payload size in bytes.</param>
/// <param name="IsKeyframe">True for a keyframe (IDR/IRAP for video).</param>
public sealed record ProbePacket(int StreamIndex, string CodecType, double? PtsTime, double? DtsTime, int Size, bool IsKeyframe);

/// <summary>What an RTSP probe saw.</summary>
public sealed record ProbeResult
{
    /// <summary>The URL probed (credentials included as given).</summary>
    public required string Url { get; init; }

    /// <summary>The streams found, in session order.</summary>
    public required IReadOnlyList<ProbeStream> Streams { get; init; }

    /// <summary>
    /// Lines that show damaged media: error-level messages of the decoders, concealed macroblocks
    /// and "corrupt decoded frame". A clean stream has none.
    /// </summary>
    public required IReadOnlyList<string> DecoderErrors { get; init; }

    /// <summary>Every error-level line from ffprobe and ffmpeg (connection, RTSP, demuxer and decoder errors).</summary>
    public required IReadOnlyList<string> ErrorLines { get; init; }

    /// <summary>The exit code of the tool that ran last (ffmpeg, or ffprobe when it failed).</summary>
    public required int ExitCode { get; init; }

    /// <summary>True when the probe ran past its time budget.</summary>
    public required bool TimedOut { get; init; }

    /// <summary>stderr of ffprobe then ffmpeg, for assertion messages.</summary>
    public required string Log { get; init; }

    /// <summary>How long the probe took.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The first video stream, or null.</summary>
    public ProbeStream? Video => Streams.FirstOrDefault(s => s.CodecType == "video");

    /// <summary>The first audio stream, or null.</summary>
    public ProbeStream? Audio => Streams.FirstOrDefault(s => s.CodecType == "audio");

    /// <summary>True when the tools exited with 0 in time and found at least one stream.</summary>
    public bool Succeeded => ExitCode == 0 && !TimedOut && Streams.Count > 0;

    /// <summary>A summary with the log, for assertion messages.</summary>
    public override string ToString() =>
        $"probe {Url}: exit {ExitCode}{(TimedOut ? " (timed out)" : "")} in {Elapsed.TotalSeconds:0.0} s; streams: " +
        string.Join(", ", Streams.Select(s => $"#{s.Index} {s.CodecType} {s.CodecName} {s.Width}x{s.Height} {s.FramesDecoded} frames")) +
        $"; decoder errors: {DecoderErrors.Count}\n{Log}";
}

/// <summary>
/// An RTSP client for tests built on ffprobe (stream descriptions) and ffmpeg (decoding N frames
/// into the null muxer). The parsers of their output are pure and public for unit tests.
/// </summary>
public static partial class Ffprobe
{
    /// <summary>Null when ffprobe and ffmpeg are installed, otherwise the skip reason.</summary>
    public static string? SkipReason => Tools.SkipReason("ffprobe", "ffmpeg");

    /// <summary>
    /// Describes the streams at <paramref name="url"/> with ffprobe, then decodes
    /// <see cref="ProbeOptions.VideoFrames"/> video frames (and the audio alongside) with ffmpeg.
    /// Never throws for a failed probe: check <see cref="ProbeResult.Succeeded"/> and the log.
    /// </summary>
    public static async Task<ProbeResult> ProbeAsync(Uri url, ProbeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        options ??= new ProbeOptions();
        var clock = Stopwatch.StartNew();
        var transport = options.Transport == RtspTransport.Udp ? "udp" : "tcp";
        var isRtsp = url.Scheme is "rtsp" or "rtsps";
        var input = new List<string>();
        if (isRtsp)
            input.AddRange(["-rtsp_transport", transport]);
        input.AddRange(["-i", url.OriginalString]);

        var probe = await RunAsync(options, "ffprobe",
            ["-hide_banner", "-loglevel", "level+error", .. input, "-show_streams", "-of", "json"],
            options.Timeout, cancellationToken);
        var log = "--- ffprobe ---\n" + probe.StandardError;
        var streams = probe.Succeeded ? ParseStreams(probe.StandardOutput) : [];
        if (!probe.Succeeded || streams.Count == 0 || options.VideoFrames <= 0)
        {
            return new ProbeResult
            {
                Url = url.OriginalString,
                Streams = streams,
                DecoderErrors = [],
                ErrorLines = ErrorLevelLines(probe.StandardError),
                ExitCode = probe.ExitCode,
                TimedOut = probe.TimedOut,
                Log = log,
                Elapsed = clock.Elapsed,
            };
        }

        var hasVideo = streams.Any(s => s.CodecType == "video");
        var frames = options.VideoFrames.ToString(CultureInfo.InvariantCulture);
        // Without video, decode about as many audio frames instead (AAC: ~21 ms each).
        string[] limit = hasVideo ? ["-frames:v", frames] : ["-frames:a", frames];
        var remaining = options.Timeout - clock.Elapsed;
        if (remaining < TimeSpan.FromSeconds(1))
            remaining = TimeSpan.FromSeconds(1);
        var decode = await RunAsync(options, "ffmpeg",
            ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+verbose", .. input, "-map", "0:v?", "-map", "0:a?", .. limit, "-f", "null", "-"],
            remaining, cancellationToken);
        log += "\n--- ffmpeg ---\n" + decode.StandardError;
        var counts = ParseDecodeCounts(decode.StandardError);
        var decoded = streams.Select(s => counts.TryGetValue(s.Index, out var c) ? s with { PacketsRead = c.Packets, FramesDecoded = c.Frames } : s).ToList();
        return new ProbeResult
        {
            Url = url.OriginalString,
            Streams = decoded,
            DecoderErrors = ParseDecoderErrors(decode.StandardError, streams.Select(s => s.CodecName)),
            ErrorLines = [.. ErrorLevelLines(probe.StandardError), .. ErrorLevelLines(decode.StandardError)],
            ExitCode = decode.ExitCode,
            TimedOut = decode.TimedOut,
            Log = log,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>
    /// Reads the first <paramref name="count"/> packets at <paramref name="url"/> with ffprobe
    /// (<paramref name="videoOnly"/>: video packets only) — timestamps, sizes and keyframe flags, for
    /// tests about GOP boundaries, frame drops and timing. Throws <see cref="InvalidOperationException"/>
    /// with ffprobe's output when it fails or runs past the timeout.
    /// </summary>
    public static async Task<IReadOnlyList<ProbePacket>> ReadPacketsAsync(Uri url, int count, bool videoOnly = true, ProbeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        options ??= new ProbeOptions();
        var args = new List<string> { "-hide_banner", "-loglevel", "level+error" };
        if (url.Scheme is "rtsp" or "rtsps")
            args.AddRange(["-rtsp_transport", options.Transport == RtspTransport.Udp ? "udp" : "tcp"]);
        if (videoOnly)
            args.AddRange(["-select_streams", "v"]);
        // "%+#N": from the start, N packets (of the selected streams).
        args.AddRange(["-read_intervals", $"%+#{count.ToString(CultureInfo.InvariantCulture)}",
            "-show_entries", "packet=stream_index,codec_type,pts_time,dts_time,size,flags", "-of", "json", url.OriginalString]);
        var result = await RunAsync(options, "ffprobe", [.. args], options.Timeout, cancellationToken);
        if (!result.Succeeded)
            throw new InvalidOperationException("ffprobe could not read packets: " + result);
        return ParsePackets(result.StandardOutput);
    }

    /// <summary>Parses the JSON of <c>ffprobe -show_entries packet=… -of json</c>.</summary>
    public static IReadOnlyList<ProbePacket> ParsePackets(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("packets", out var list) || list.ValueKind != JsonValueKind.Array)
            return [];
        var packets = new List<ProbePacket>();
        foreach (var p in list.EnumerateArray())
        {
            packets.Add(new ProbePacket(
                StreamIndex: Int(p, "stream_index") ?? -1,
                CodecType: Str(p, "codec_type") ?? "unknown",
                PtsTime: Seconds(p, "pts_time"),
                DtsTime: Seconds(p, "dts_time"),
                Size: Int(p, "size") ?? 0,
                IsKeyframe: (Str(p, "flags") ?? "").Contains('K', StringComparison.Ordinal)));
        }
        return packets;
    }

    /// <summary>Parses the JSON of <c>ffprobe -show_streams -of json</c>.</summary>
    public static IReadOnlyList<ProbeStream> ParseStreams(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("streams", out var list) || list.ValueKind != JsonValueKind.Array)
            return [];
        var streams = new List<ProbeStream>();
        foreach (var s in list.EnumerateArray())
        {
            streams.Add(new ProbeStream(
                Index: Int(s, "index") ?? streams.Count,
                CodecType: Str(s, "codec_type") ?? "unknown",
                CodecName: Str(s, "codec_name") ?? "unknown",
                Width: Int(s, "width"),
                Height: Int(s, "height"),
                SampleRate: Int(s, "sample_rate"),
                Channels: Int(s, "channels"),
                PacketsRead: 0,
                FramesDecoded: 0));
        }
        return streams;
    }

    /// <summary>
    /// Reads ffmpeg's verbose end-of-run summary
    /// ("Input stream #0:1 (audio): 48 packets read (8192 bytes); 48 frames decoded; …") into
    /// packets and frames per input stream index.
    /// </summary>
    public static IReadOnlyDictionary<int, (int Packets, int Frames)> ParseDecodeCounts(string ffmpegStderr)
    {
        ArgumentNullException.ThrowIfNull(ffmpegStderr);
        var counts = new Dictionary<int, (int, int)>();
        foreach (Match m in InputStreamSummary().Matches(ffmpegStderr))
        {
            counts[int.Parse(m.Groups["index"].Value, CultureInfo.InvariantCulture)] = (
                int.Parse(m.Groups["packets"].Value, CultureInfo.InvariantCulture),
                int.Parse(m.Groups["frames"].Value, CultureInfo.InvariantCulture));
        }
        return counts;
    }

    /// <summary>
    /// Picks the lines of an ffmpeg log (run with <c>-loglevel level+…</c>) that show damaged media:
    /// error-level lines from a decoder context named like one of <paramref name="decoderNames"/>,
    /// concealment messages, and "corrupt decoded frame".
    /// </summary>
    public static IReadOnlyList<string> ParseDecoderErrors(string ffmpegStderr, IEnumerable<string> decoderNames)
    {
        ArgumentNullException.ThrowIfNull(ffmpegStderr);
        var names = new HashSet<string>(decoderNames, StringComparer.Ordinal);
        var errors = new List<string>();
        foreach (var raw in ffmpegStderr.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Contains("corrupt decoded frame", StringComparison.Ordinal))
            {
                errors.Add(line);
                continue;
            }
            var m = ContextLine().Match(line);
            if (!m.Success || !names.Contains(m.Groups["context"].Value))
                continue;
            if (m.Groups["level"].Value is "error" or "fatal" or "panic" || line.Contains("conceal", StringComparison.Ordinal))
                errors.Add(line);
        }
        return errors;
    }

    private static Task<CommandResult> RunAsync(ProbeOptions options, string tool, string[] arguments, TimeSpan timeout, CancellationToken cancellationToken) =>
        Command.RunInAsync(options.NetworkNamespace, tool, arguments, timeout, cancellationToken);

    private static List<string> ErrorLevelLines(string stderr) =>
        stderr.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => ErrorLevel().IsMatch(l)).ToList();

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static double? Seconds(JsonElement e, string name) =>
        Str(e, name) is { } text && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static int? Int(JsonElement e, string name)
    {
        if (!e.TryGetProperty(name, out var v))
            return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n))
            return n;
        // ffprobe prints some numbers (sample_rate) as strings.
        return v.ValueKind == JsonValueKind.String && int.TryParse(v.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out n) ? n : null;
    }

    [GeneratedRegex(@"Input stream #\d+:(?<index>\d+) \((?<type>\w+)\): (?<packets>\d+) packets read \(\d+ bytes\); (?<frames>\d+) frames decoded", RegexOptions.CultureInvariant)]
    private static partial Regex InputStreamSummary();

    [GeneratedRegex(@"^\[(?<context>[\w.-]+) @ 0x[0-9a-f]+\] \[(?<level>\w+)\]", RegexOptions.CultureInvariant)]
    private static partial Regex ContextLine();

    [GeneratedRegex(@"\[(error|fatal|panic)\]", RegexOptions.CultureInvariant)]
    private static partial Regex ErrorLevel();
}
