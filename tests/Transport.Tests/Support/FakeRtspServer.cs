using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.Tests.Support;

/// <summary>
/// A scripted RTSP server on a free loopback port: <see cref="Handler"/> answers each request (null
/// closes the connection); after a 2xx PLAY it replays the interleaved frames of a capture, paced:
/// interleaved, or as UDP datagrams from <see cref="UdpPorts"/> to the client's ports when the SETUP
/// answer named <c>client_port</c> (track N's RTP is on capture channel 2N, its RTCP on 2N+1).
/// Records every request, and the client's RTCP (interleaved and UDP).
/// </summary>
internal sealed class FakeRtspServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly UdpClient _udpRtp = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly UdpClient _udpRtcp = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly Task _udpRtcpReader;
    private volatile Func<int, byte[], Task>? _sendRtcp;

    public FakeRtspServer(Func<RtspRequest, RtspResponse?> handler, string? replayCapture = null)
    {
        Handler = handler;
        ReplayCapture = replayCapture;
        _listener.Start();
        _accept = AcceptAsync();
        _udpRtcpReader = ReadUdpRtcpAsync();
    }

    /// <summary>When false, a UDP session gets no datagrams at all (a firewall between camera and client).</summary>
    public bool SendUdpMedia { get; init; } = true;

    /// <summary><c>server_port=</c> for a UDP SETUP answer: the ports the UDP replay is sent from.</summary>
    public string UdpPorts => $"{((IPEndPoint)_udpRtp.Client.LocalEndPoint!).Port}-{((IPEndPoint)_udpRtcp.Client.LocalEndPoint!).Port}";

    /// <summary>RTCP the client sent to the server's UDP RTCP port.</summary>
    public ConcurrentQueue<byte[]> ClientUdpRtcp { get; } = new();

    /// <summary>Completes when a PLAY was answered 2xx (the replay then runs).</summary>
    public Task Played => _played.Task;

    private readonly TaskCompletionSource _played = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Sends an RTCP packet to the client on track <paramref name="track"/>'s RTCP channel of the playing session (interleaved or UDP).</summary>
    public Task SendRtcpAsync(int track, byte[] rtcp) =>
        (_sendRtcp ?? throw new InvalidOperationException("no session is playing"))(track, rtcp);

    public Func<RtspRequest, RtspResponse?> Handler { get; }

    public string? ReplayCapture { get; }

    /// <summary>When set and non-null for a request, these bytes are written instead of a response.</summary>
    public Func<RtspRequest, byte[]?>? Raw { get; init; }

    public ConcurrentQueue<RtspRequest> Requests { get; } = new();

    public ConcurrentQueue<InterleavedFrame> ClientFrames { get; } = new();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>TCP connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    private int _connections;

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
                Interlocked.Increment(ref _connections);
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
        var udpTargets = new List<(IPEndPoint Rtp, IPEndPoint Rtcp)>();
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
                    if (request.Method == "SETUP" && response.IsSuccess && response.Headers["Transport"] is { } answered
                        && RtspTransport.ParseList(answered)[0] is { ClientPort: { } ports, IsTcp: false })
                        udpTargets.Add((new IPEndPoint(IPAddress.Loopback, ports.First), new IPEndPoint(IPAddress.Loopback, ports.Second)));
                    if (request.Method == "PLAY" && response.IsSuccess)
                    {
                        var udp = udpTargets.Count > 0 ? udpTargets.ToArray() : null;
                        _sendRtcp = (track, bytes) => udp is null
                            ? WriteFrameAsync(stream, writeLock, (byte)(2 * track + 1), bytes)
                            : _udpRtcp.SendAsync(bytes, udp[track].Rtcp, _stop.Token).AsTask();
                        _played.TrySetResult();
                        if (ReplayCapture is not null && (udp is null || SendUdpMedia))
                            replay ??= ReplayAsync(stream, writeLock, udp);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException) { }
    }

    private async Task ReplayAsync(NetworkStream stream, SemaphoreSlim writeLock, (IPEndPoint Rtp, IPEndPoint Rtcp)[]? udp)
    {
        var frames = Captures.Stream(ReplayCapture!).Frames;
        try
        {
            while (true)
            {
                foreach (var f in frames)
                {
                    if (udp is null)
                        await WriteFrameAsync(stream, writeLock, f.Channel, f.Payload);
                    else if (f.Channel / 2 < udp.Length)
                        await (f.Channel % 2 == 0 ? _udpRtp : _udpRtcp).SendAsync(f.Payload, f.Channel % 2 == 0 ? udp[f.Channel / 2].Rtp : udp[f.Channel / 2].Rtcp, _stop.Token);
                    await Task.Delay(2, _stop.Token);
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException) { }
    }

    private async Task WriteFrameAsync(NetworkStream stream, SemaphoreSlim writeLock, byte channel, ReadOnlyMemory<byte> payload)
    {
        var w = new ArrayBufferWriter<byte>();
        InterleavedFrame.Write(w, channel, payload.Span);
        await writeLock.WaitAsync();
        try { await stream.WriteAsync(w.WrittenMemory, _stop.Token); }
        finally { writeLock.Release(); }
    }

    private async Task ReadUdpRtcpAsync()
    {
        try
        {
            while (true) ClientUdpRtcp.Enqueue((await _udpRtcp.ReceiveAsync(_stop.Token)).Buffer);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accept;
        await _udpRtcpReader;
        _udpRtp.Dispose();
        _udpRtcp.Dispose();
        _stop.Dispose();
    }
}
