using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Rtsp;
using Pinhole.Streaming.Rtsp;
using Pinhole.Relay.Security;
using Pinhole.Relay.Web;
using Pinhole.Streaming;
using Pinhole.Relay.Viewers;
using Pinhole.Testing;
using Pinhole.Transport.Media;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Rtsp;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>Feeds a <see cref="MediaStream"/> in real time from test tracks, looping them, as the uplink would.</summary>
internal sealed class StreamFeeder : IAsyncDisposable
{
    private readonly MediaStream _stream;
    private readonly TestTrack[] _tracks;
    private readonly CancellationTokenSource _stop = new();
    private readonly long[] _fed;
    private Task? _loop;

    public StreamFeeder(MediaStream stream, params TestTrack[] tracks)
    {
        _stream = stream;
        _tracks = tracks;
        _fed = new long[tracks.Length];
    }

    public IReadOnlyList<TrackInfo> Infos => [.. _tracks.Select(t => t.Info)];

    /// <summary>Media time of the first unit: a source's clock starts wherever it likes (a camera's new RTP session).</summary>
    public TimeSpan Origin { get; init; }

    public long Fed(int track) => Interlocked.Read(ref _fed[track]);

    /// <summary>Starts feeding; without <paramref name="announce"/> frames just carry on under the tracks the stream has.</summary>
    public StreamFeeder Start(bool announce = true)
    {
        if (announce) _stream.OnTracks(Infos);
        _loop = Task.Run(() => RunAsync(_stop.Token));
        return this;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var next = new long[_tracks.Length];
        while (!ct.IsCancellationRequested)
        {
            // The track whose next unit is due first, by presentation time in seconds.
            var i = Enumerable.Range(0, _tracks.Length).MinBy(k => (double)next[k] * _tracks[k].FrameDuration / _tracks[k].Info.ClockRate);
            var t = _tracks[i];
            var due = TimeSpan.FromSeconds((double)next[i] * t.FrameDuration / t.Info.ClockRate);
            var wait = due - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try { await Task.Delay(wait, ct); }
                catch (OperationCanceledException) { return; }
            }
            var u = t.Units[(int)(next[i] % t.Units.Count)];
            var pts = next[i] * t.FrameDuration + (long)(Origin.TotalSeconds * t.Info.ClockRate);
            _stream.OnAccessUnit(new AccessUnit(i, pts, pts, u.IsKeyframe, u.Data));
            Interlocked.Increment(ref _fed[i]);
            next[i]++;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop;
        _stop.Dispose();
    }
}

/// <summary>An RTSP server on a free loopback port with a registry the test feeds.</summary>
internal sealed class RtspHarness : IAsyncDisposable
{
    public const string User = "alice";
    public const string Password = "s3cret:pw";

    private RtspHarness(RtspServer server, MediaStreamRegistry registry, MeterProbe metrics)
    {
        Server = server;
        Registry = registry;
        Metrics = metrics;
    }

    public RtspServer Server { get; }
    public MediaStreamRegistry Registry { get; }
    /// <summary>The server's instruments, read as a scrape would.</summary>
    public MeterProbe Metrics { get; }

    /// <summary>The server's log lines, when started with an output.</summary>
    public TestOutputLoggerProvider? Log { get; private init; }

    private LoggerFactory? LogFactory { get; init; }

    public int Port => Server.LocalEndPoint!.Port;

    public static async Task<RtspHarness> StartAsync(bool withViewers = true, Func<RtspServerOptions, RtspServerOptions>? configure = null, MediaStreamRegistry? registry = null,
        ITestOutputHelper? output = null, Pinhole.Transport.Security.LoginThrottle? throttle = null, IRtspPublishHandler? publishing = null)
    {
        // Most tests are about media, not about the secure defaults (attack tests set those back):
        // without viewers serve anonymously, and take Basic on the plaintext port.
        var options = new RtspServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), AnonymousViewing = !withViewers, AllowBasicOnPlaintext = true };
        options = configure?.Invoke(options) ?? options;
        registry ??= new MediaStreamRegistry();
        var viewers = new ViewerDirectory(withViewers ? [new ViewerConfig { User = User, Password = Password }] : []);
        var metrics = new MeterProbe(new Meter("test"));
        // With an output, the server's log lines (why a connection closed, …) land in the test's output.
        var log = output is null ? null : new TestOutputLoggerProvider(output, "relay");
        var factory = log is null ? null : new LoggerFactory([log]);
        var server = new RtspServer(options, registry, viewers, metrics.Meter, TimeProvider.System, factory?.CreateLogger<RtspServer>(),
            new RtspLoginThrottle(throttle ?? new Pinhole.Transport.Security.LoginThrottle(new BrowserViewingOptions().LoginThrottle(), TimeProvider.System)), new RefusalLog(metrics.Meter, TimeProvider.System, factory?.CreateLogger<RefusalLog>()), publishing);
        await server.StartAsync(CancellationToken.None);
        return new RtspHarness(server, registry, metrics) { Log = log, LogFactory = factory };
    }

    public string Url(string path, bool credentials = true) =>
        credentials ? $"rtsp://{User}:{Uri.EscapeDataString(Password)}@127.0.0.1:{Port}/{path}" : $"rtsp://127.0.0.1:{Port}/{path}";

    /// <summary>The value of one series (<c>name</c> or <c>name{labels}</c>), NaN when it is not reported.</summary>
    public double Metric(string line)
    {
        if (!line.Contains('{', StringComparison.Ordinal)) line += "{}";
        foreach (var l in Metrics.Render().Split('\n'))
            if (l.StartsWith(line + " ", StringComparison.Ordinal)) return double.Parse(l[(line.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        return double.NaN;
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await Server.StopAsync(timeout.Token);
        LogFactory?.Dispose();
        Metrics.Dispose();
        Metrics.Meter.Dispose();
    }
}

/// <summary>What ffprobe saw of one stream.</summary>
internal sealed record ProbedStream(string CodecType, string CodecName, int Width, int Height, int SampleRate, int Frames);

internal static class FfProbe
{
    /// <summary>Plays <paramref name="url"/> for <paramref name="seconds"/> of media, decoding every frame.</summary>
    public static async Task<(List<ProbedStream> Streams, string Errors, int ExitCode)> ProbeAsync(string url, string transport, double seconds = 2)
    {
        var args = $"-v error -rtsp_transport {transport} -timeout 10000000 -analyzeduration 2000000 -count_frames "
            + $"-read_intervals %+{seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)} "
            + $"-show_entries stream=codec_type,codec_name,width,height,sample_rate,nb_read_frames -of json \"{url}\"";
        var (code, stdout, stderr) = await Task.Run(() => TestMedia.Run("ffprobe", args, 60_000));
        var streams = new List<ProbedStream>();
        if (stdout.Trim().Length > 0)
        {
            using var doc = JsonDocument.Parse(stdout);
            if (doc.RootElement.TryGetProperty("streams", out var list))
            {
                foreach (var s in list.EnumerateArray())
                {
                    static int Int(JsonElement e, string name) =>
                        e.TryGetProperty(name, out var v) ? v.ValueKind == JsonValueKind.Number ? v.GetInt32() : int.TryParse(v.GetString(), out var i) ? i : 0 : 0;
                    streams.Add(new ProbedStream(
                        s.GetProperty("codec_type").GetString() ?? "",
                        s.TryGetProperty("codec_name", out var n) ? n.GetString() ?? "" : "",
                        Int(s, "width"), Int(s, "height"), Int(s, "sample_rate"), Int(s, "nb_read_frames")));
                }
            }
        }
        return (streams, stderr, code);
    }
}

/// <summary>
/// A minimal RTSP client over a raw socket for what ffprobe cannot show: exact status codes,
/// Basic and SHA-256 Digest, counting interleaved packets, and a viewer that stops reading.
/// Uses the shared parser, so it reads what a real client would.
/// </summary>
internal sealed class RawRtspClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private int _cseq;

    private RawRtspClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _reader = PipeReader.Create(_stream);
    }

    public string? Authorization { get; set; }

    /// <summary>Called for every interleaved frame (channel, payload) after the counters are updated.</summary>
    public Action<byte, ReadOnlyMemory<byte>>? OnFrame { get; set; }
    public string? Session { get; private set; }

    /// <summary>RTP packets and marker bits seen per interleaved channel.</summary>
    public Dictionary<byte, (int Packets, int Markers)> Channels { get; } = [];

    /// <summary>The first packet received per interleaved channel.</summary>
    public Dictionary<byte, byte[]> FirstPacket { get; } = [];

    /// <summary>The latest packet received per interleaved channel.</summary>
    public Dictionary<byte, byte[]> LastPacket { get; } = [];

    public static async Task<RawRtspClient> ConnectAsync(int port, int? receiveBuffer = null, string? from = null)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        if (receiveBuffer is { } rb) tcp.Client.ReceiveBufferSize = rb;
        // Any 127.x.y.z is loopback on Linux: a test can be several clients at several addresses.
        if (from is not null) tcp.Client.Bind(new IPEndPoint(IPAddress.Parse(from), 0));
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        return new RawRtspClient(tcp);
    }

    /// <summary>True when the server closed the connection within <paramref name="within"/> (reads and discards what arrives).</summary>
    public async Task<bool> ClosedByServerAsync(TimeSpan within)
    {
        using var cts = new CancellationTokenSource(within);
        var buffer = new byte[4096];
        try
        {
            while (true)
                if (await _stream.ReadAsync(buffer, cts.Token) == 0) return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public Task SendRawAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    public Task<RtspResponse> RequestAsync(string method, string uri, params (string Name, string Value)[] headers) =>
        RequestAsync(method, uri, ReadOnlyMemory<byte>.Empty, headers);

    public async Task<RtspResponse> RequestAsync(string method, string uri, ReadOnlyMemory<byte> body, params (string Name, string Value)[] headers)
    {
        var req = new RtspRequest(method, uri) { CSeq = ++_cseq, Body = body };
        if (Authorization is not null) req.Headers["Authorization"] = Authorization;
        if (Session is not null) req.Headers["Session"] = Session;
        foreach (var (n, v) in headers) req.Headers[n] = v;
        await _stream.WriteAsync(RtspWriter.ToBytes(req));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var msg = await ReadAsync(timeout.Token);
            if (msg is RtspResponse r)
            {
                Assert.Equal(req.CSeq, r.CSeq);
                if (r.Headers["Session"] is { } s) Session = s.Split(';')[0];
                return r;
            }
            if (msg is null) throw new EndOfStreamException("server closed the connection");
        }
    }

    /// <summary>Reads the next message, counting interleaved frames on the way; null at end of stream.</summary>
    public async Task<RtspMessage?> ReadAsync(CancellationToken ct)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(ct);
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            if (RtspParser.TryParse(ref reader, out var message, out var frame))
            {
                _reader.AdvanceTo(reader.Position);
                if (message is not null) return message;
                var p = frame.Payload.Span;
                Channels.TryGetValue(frame.Channel, out var c);
                FirstPacket.TryAdd(frame.Channel, frame.Payload.ToArray());
                if (frame.Channel % 2 == 0) LastPacket[frame.Channel] = frame.Payload.ToArray();
                Channels[frame.Channel] = (c.Packets + 1, c.Markers + (p.Length > 1 && (p[1] & 0x80) != 0 && frame.Channel % 2 == 0 ? 1 : 0));
                OnFrame?.Invoke(frame.Channel, frame.Payload);
                continue;
            }
            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted) return null;
        }
    }

    /// <summary>Reads media for <paramref name="duration"/>; false when the server closed the connection.</summary>
    public async Task<bool> PumpAsync(TimeSpan duration)
    {
        using var cts = new CancellationTokenSource(duration);
        try
        {
            while (true)
                if (await ReadAsync(cts.Token) is null) return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    /// <summary>Authenticates with whatever the server's 401 offers that <paramref name="pick"/> selects.</summary>
    public static string DigestFor(RtspResponse unauthorized, string method, string uri, string user, string password, string algorithm)
    {
        var challenges = HttpAuthChallenge.ParseAll(unauthorized.Headers.GetValues("WWW-Authenticate"));
        var chosen = challenges.Where(c => c.Is("Digest") && string.Equals(c["algorithm"], algorithm, StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.Single(chosen);
        var auth = HttpClientAuthenticator.Create(chosen, user, password)!;
        Assert.Equal(algorithm, DigestMath.Name(auth.Algorithm));
        return auth.Authorize(method, uri);
    }

    public static string Basic(string user, string password) =>
        "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));

    /// <summary>OPTIONS/DESCRIBE/SETUP (interleaved, every track)/PLAY with Basic credentials.</summary>
    public async Task<RtspResponse> PlayTcpAsync(string baseUrl, int tracks)
    {
        Authorization ??= Basic(RtspHarness.User, RtspHarness.Password);
        var d = await RequestAsync("DESCRIBE", baseUrl, ("Accept", "application/sdp"));
        Assert.Equal(200, d.StatusCode);
        for (var i = 0; i < tracks; i++)
        {
            var s = await RequestAsync("SETUP", $"{baseUrl}/trackID={i}", ("Transport", $"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}"));
            Assert.Equal(200, s.StatusCode);
        }
        return await RequestAsync("PLAY", baseUrl, ("Range", "npt=0.000-"));
    }

    public bool IsConnectedAfterPoll()
    {
        // A closed peer reads as readable with zero bytes available.
        return !(_tcp.Client.Poll(0, SelectMode.SelectRead) && _tcp.Client.Available == 0);
    }

    public async ValueTask DisposeAsync()
    {
        await _reader.CompleteAsync();
        _tcp.Dispose();
    }
}
