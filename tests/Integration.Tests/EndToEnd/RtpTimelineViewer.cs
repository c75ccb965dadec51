using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// A raw RTSP client that plays the first track interleaved over TCP and records, for every new RTP
/// timestamp on it, the timestamp and when it arrived: what a recorder would write as its timeline.
/// </summary>
internal sealed class RtpTimelineViewer : IAsyncDisposable
{
    private readonly TcpClient _client = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<(TimeSpan At, uint Timestamp)> _timeline = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private Task? _reader;
    private int _cseq;

    /// <summary>Each distinct RTP timestamp of track 0 in arrival order, with the time it arrived.</summary>
    public IReadOnlyList<(TimeSpan At, uint Timestamp)> Timeline { get { lock (_lock) return [.. _timeline]; } }

    public static async Task<RtpTimelineViewer> PlayAsync(string host, int port, string path, string user, string password)
    {
        var viewer = new RtpTimelineViewer();
        try
        {
            await viewer._client.ConnectAsync(host, port).WaitAsync(TimeSpan.FromSeconds(10));
            var stream = viewer._client.GetStream();
            var url = $"rtsp://{host}:{port}{path}";
            var auth = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
            var (status, headers, body) = await viewer.RequestAsync(stream, "DESCRIBE", url, $"Accept: application/sdp\r\nAuthorization: {auth}\r\n");
            if (status != 200) throw new InvalidOperationException($"DESCRIBE answered {status}");
            var baseUrl = headers.TryGetValue("content-base", out var cb) ? cb.TrimEnd('/') : url;
            var control = body.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("a=control:", StringComparison.Ordinal))
                .Select(l => l["a=control:".Length..]).First(c => c != "*");
            var trackUrl = control.StartsWith("rtsp://", StringComparison.Ordinal) ? control : $"{baseUrl}/{control}";
            var setup = await viewer.RequestAsync(stream, "SETUP", trackUrl, $"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nAuthorization: {auth}\r\n");
            if (setup.Status != 200) throw new InvalidOperationException($"SETUP answered {setup.Status}");
            var session = setup.Headers["session"].Split(';')[0].Trim();
            var play = await viewer.RequestAsync(stream, "PLAY", url, $"Session: {session}\r\nRange: npt=0.000-\r\nAuthorization: {auth}\r\n");
            if (play.Status != 200) throw new InvalidOperationException($"PLAY answered {play.Status}");
            viewer._reader = Task.Run(() => viewer.ReadAsync(stream, viewer._stop.Token));
            return viewer;
        }
        catch
        {
            await viewer.DisposeAsync();
            throw;
        }
    }

    private async Task ReadAsync(NetworkStream stream, CancellationToken ct)
    {
        var header = new byte[4];
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                await stream.ReadExactlyAsync(header, ct);
                if (header[0] != (byte)'$') throw new InvalidDataException($"not an interleaved frame: 0x{header[0]:x2}");
                var length = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
                await stream.ReadExactlyAsync(buffer.AsMemory(0, length), ct);
                if (header[1] != 0 || length < 12) continue;
                var timestamp = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(4));
                lock (_lock)
                    if (_timeline.Count == 0 || _timeline[^1].Timestamp != timestamp) _timeline.Add((_clock.Elapsed, timestamp));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or EndOfStreamException or ObjectDisposedException)
        {
        }
    }

    private Task<(int Status, Dictionary<string, string> Headers, string Body)> RequestAsync(NetworkStream stream, string method, string url, string extraHeaders) =>
        RawRtspExchange.RequestAsync(stream, ++_cseq, "pinhole-timeline-viewer", method, url, extraHeaders);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _client.Dispose();
        if (_reader is not null) await _reader;
        _stop.Dispose();
    }
}
