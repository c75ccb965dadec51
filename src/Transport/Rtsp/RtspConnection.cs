using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace Pinhole.Transport.Rtsp;

/// <summary>
/// The I/O half of an RTSP client connection: one TCP stream, a read loop that parses with
/// <see cref="RtspParser"/> and hands out responses (matched by CSeq), interleaved frames and
/// server requests. Knows nothing about sessions or media.
/// </summary>
internal sealed class RtspConnection : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<int, TaskCompletionSource<RtspResponse>> _pending = new();
    private readonly CancellationTokenSource _closing = new();
    private readonly RtspParserLimits _limits;
    private Task? _readLoop;

    private RtspConnection(TcpClient tcp, RtspParserLimits limits)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 4096));
        _limits = limits;
    }

    /// <summary>Called for every interleaved frame, on the read loop.</summary>
    public Action<InterleavedFrame>? FrameReceived { get; set; }

    /// <summary>Called for requests the server sends us; the returned response is written back.</summary>
    public Func<RtspRequest, RtspResponse>? RequestReceived { get; set; }

    /// <summary>Completes when the read loop ends (faulted with the reason).</summary>
    public Task Completion => _readLoop ?? Task.CompletedTask;

    public System.Net.IPEndPoint? RemoteEndPoint => _tcp.Client.RemoteEndPoint as System.Net.IPEndPoint;

    public System.Net.IPEndPoint? LocalEndPoint => _tcp.Client.LocalEndPoint as System.Net.IPEndPoint;

    public static async Task<RtspConnection> ConnectAsync(string host, int port, RtspParserLimits limits, CancellationToken cancellationToken)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
        var c = new RtspConnection(tcp, limits);
        c._readLoop = Task.Run(c.ReadLoopAsync, CancellationToken.None);
        return c;
    }

    public async Task<RtspResponse> SendAsync(RtspRequest request, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        var tcs = new TaskCompletionSource<RtspResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cseq = request.CSeq;
        if (!_pending.TryAdd(cseq, tcs)) throw new InvalidOperationException("CSeq already pending");
        try
        {
            await WriteAsync(RtspWriter.ToBytes(request), cancellationToken).ConfigureAwait(false);
            using var timeoutCts = new CancellationTokenSource(timeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutCts.Token);
            var done = await Task.WhenAny(tcs.Task, Completion, Task.Delay(Timeout.InfiniteTimeSpan, linked.Token)).ConfigureAwait(false);
            if (done == tcs.Task) return await tcs.Task.ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            if (done == Completion)
            {
                await Completion.ConfigureAwait(false); // rethrows the read error
                throw new RtspClientException("the server closed the connection");
            }
            throw new TimeoutException($"no answer to {request.Method} within {timeout.TotalSeconds:0.#} s");
        }
        finally
        {
            _pending.TryRemove(cseq, out _);
        }
    }

    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_closing.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                var consumed = Dispatch(buffer, out var replies);
                _reader.AdvanceTo(consumed, buffer.End);
                if (replies is not null)
                    foreach (var reply in replies) await WriteAsync(RtspWriter.ToBytes(reply), _closing.Token).ConfigureAwait(false);
                if (result.IsCompleted)
                    throw new RtspClientException(buffer.Slice(consumed).Length > 0 ? "the server closed the connection in the middle of a message" : "the server closed the connection");
            }
        }
        catch (OperationCanceledException) when (_closing.IsCancellationRequested)
        {
        }
        catch (IOException e)
        {
            throw new RtspClientException("the RTSP connection failed: " + e.Message, e);
        }
    }

    private SequencePosition Dispatch(ReadOnlySequence<byte> buffer, out List<RtspResponse>? replies)
    {
        replies = null; // server requests are rare; no list per read
        var reader = new SequenceReader<byte>(buffer);
        while (RtspParser.TryParse(ref reader, out var message, out var frame, _limits))
        {
            switch (message)
            {
                case null:
                    FrameReceived?.Invoke(frame);
                    break;
                case RtspResponse response:
                    if (_pending.TryGetValue(response.CSeq, out var tcs)) tcs.TrySetResult(response);
                    else if (response.CSeq < 0 && _pending.Count == 1)
                        // Some cameras drop CSeq from responses; with one request in flight the match is unambiguous.
                        _pending.Values.FirstOrDefault()?.TrySetResult(response);
                    break;
                case RtspRequest request:
                    var reply = RequestReceived?.Invoke(request) ?? new RtspResponse(501, RtspResponse.ReasonFor(501));
                    reply.CSeq = request.CSeq;
                    (replies ??= []).Add(reply);
                    break;
            }
        }
        return reader.Position;
    }

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync().ConfigureAwait(false);
        _tcp.Dispose();
        try { if (_readLoop is not null) await _readLoop.ConfigureAwait(false); }
        catch (Exception) { /* the loop's error was already observed or no longer matters */ }
        await _reader.CompleteAsync().ConfigureAwait(false);
        _closing.Dispose();
        _writeLock.Dispose();
    }
}

/// <summary>An RTSP session with a camera failed. The message never contains credentials.</summary>
public sealed class RtspClientException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RtspClientException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public RtspClientException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with a generic message.</summary>
    public RtspClientException() : base("RTSP session failed") { }

    /// <summary>Creates the exception for an RTSP error status.</summary>
    public RtspClientException(string message, int statusCode) : base(message) => StatusCode = statusCode;

    /// <summary>The RTSP status code that caused the failure, when one did (0 otherwise).</summary>
    public int StatusCode { get; }
}
