using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.Tests.Support;

/// <summary>
/// A scripted RTSP server on a free loopback port: <see cref="Handler"/> answers each request (null
/// closes the connection); after a 2xx PLAY it replays the interleaved frames of a capture, paced.
/// Records every request.
/// </summary>
internal sealed class FakeRtspServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    public FakeRtspServer(Func<RtspRequest, RtspResponse?> handler, string? replayCapture = null)
    {
        Handler = handler;
        ReplayCapture = replayCapture;
        _listener.Start();
        _accept = AcceptAsync();
    }

    public Func<RtspRequest, RtspResponse?> Handler { get; }

    public string? ReplayCapture { get; }

    /// <summary>When set and non-null for a request, these bytes are written instead of a response.</summary>
    public Func<RtspRequest, byte[]?>? Raw { get; init; }

    public ConcurrentQueue<RtspRequest> Requests { get; } = new();

    public ConcurrentQueue<InterleavedFrame> ClientFrames { get; } = new();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string Url(string path = "/cam") => $"rtsp://127.0.0.1:{Port}{path}";

    /// <summary>A 200 response with the capture's SDP and Content-Base pointing here.</summary>
    public RtspResponse DescribeFrom(string capture)
    {
        var original = Captures.Describe(capture);
        var r = new RtspResponse(200, "OK") { Body = original.Body };
        r.Headers.Add("Content-Type", "application/sdp");
        r.Headers.Add("Content-Base", Url() + "/");
        return r;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = Task.Run(() => ServeAsync(client));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var owned = client;
        var stream = client.GetStream();
        var buffer = new byte[65536];
        var pending = new List<byte>();
        var writeLock = new SemaphoreSlim(1, 1);
        Task? replay = null;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var n = await stream.ReadAsync(buffer, _stop.Token);
                if (n == 0) return;
                pending.AddRange(buffer.AsSpan(0, n).ToArray());
                while (true)
                {
                    var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(pending.ToArray()));
                    if (!RtspParser.TryParse(ref reader, out var message, out var frame)) break;
                    pending.RemoveRange(0, (int)reader.Consumed);
                    if (message is null) ClientFrames.Enqueue(frame); // the client's RTCP
                    if (message is not RtspRequest request) continue;
                    Requests.Enqueue(request);
                    if (Raw?.Invoke(request) is { } raw)
                    {
                        await stream.WriteAsync(raw, _stop.Token);
                        continue;
                    }
                    var response = Handler(request);
                    if (response is null) return;
                    response.CSeq = request.CSeq;
                    await writeLock.WaitAsync();
                    try { await stream.WriteAsync(RtspWriter.ToBytes(response), _stop.Token); }
                    finally { writeLock.Release(); }
                    if (request.Method == "PLAY" && response.IsSuccess && ReplayCapture is not null)
                        replay ??= ReplayAsync(stream, writeLock);
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException) { }
    }

    private async Task ReplayAsync(NetworkStream stream, SemaphoreSlim writeLock)
    {
        var frames = Captures.Stream(ReplayCapture!).Frames;
        try
        {
            while (true)
            {
                foreach (var f in frames)
                {
                    var w = new ArrayBufferWriter<byte>();
                    InterleavedFrame.Write(w, f.Channel, f.Payload.Span);
                    await writeLock.WaitAsync();
                    try { await stream.WriteAsync(w.WrittenMemory, _stop.Token); }
                    finally { writeLock.Release(); }
                    await Task.Delay(2, _stop.Token);
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accept;
        _stop.Dispose();
    }
}
