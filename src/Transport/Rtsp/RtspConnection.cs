using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Sockets;

namespace Pinhole.Transport.Rtsp;

/// <summary>
/// The I/O half of an RTSP client connection: one TCP socket, a reader that parses with
/// <see cref="RtspParser"/> and hands out responses (matched by CSeq), interleaved frames and
/// server requests. Knows nothing about sessions or media.
/// </summary>
/// <remarks>
/// The socket stays a plain blocking socket read by one dedicated thread. With RTP interleaved on
/// the connection (the default) a 4 Mbit/s camera sends some 400 packets a second; through .NET's
/// async sockets each one woke the epoll thread and then a thread-pool worker, and that parking and
/// waking was most of the edge's CPU (perf: futex and context switches). A blocking read wakes this
/// one thread per burst, as ffmpeg's read loop does, and the frame handlers run right here.
/// Writes (requests, keepalives, RTCP) are rare and small and are made synchronously under a lock.
/// </remarks>
internal sealed class RtspConnection : IAsyncDisposable
{
    private const int InitialBufferBytes = 64 * 1024;

    /// <summary>A write the camera does not take within this fails the connection.</summary>
    private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<int, TaskCompletionSource<RtspResponse>> _pending = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly RtspParserLimits _limits;
    private readonly int _maxBufferBytes;
    private volatile bool _closing;
    private int _disposed;

    private RtspConnection(Socket socket, RtspParserLimits limits)
    {
        _socket = socket;
        _limits = limits;
        // Room for the largest message the limits allow, or a whole interleaved frame, plus a read.
        _maxBufferBytes = Math.Max(limits.MaxHeaderBytes + limits.MaxBodyBytes, InterleavedFrame.HeaderLength + ushort.MaxValue) + InitialBufferBytes;
    }

    /// <summary>
    /// Called for every interleaved frame, on the reader thread. The payload is lent from the read
    /// buffer: it is valid only during the call (copy what must outlive it). Some 400 packets a
    /// second arrive from a 4 Mbit/s camera, and a fresh array for each was most of the allocation.
    /// </summary>
    public Action<InterleavedFrame>? FrameReceived { get; set; }

    /// <summary>Called for requests the server sends us; the returned response is written back.</summary>
    public Func<RtspRequest, RtspResponse>? RequestReceived { get; set; }

    /// <summary>Completes when the reader ends (faulted with the reason).</summary>
    public Task Completion => _completion.Task;

    public IPEndPoint? RemoteEndPoint => _socket.RemoteEndPoint as IPEndPoint;

    public IPEndPoint? LocalEndPoint => _socket.LocalEndPoint as IPEndPoint;

    public static async Task<RtspConnection> ConnectAsync(string host, int port, RtspParserLimits limits, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        var addresses = IPAddress.TryParse(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        // A blocking connect keeps the socket out of the async engine for good; one async call would
        // make it non-blocking and every later read would go through epoll. It gets a thread of its
        // own, not a pool thread: cameras that time out must not starve the pool. Cancelling closes
        // the socket and stops waiting at once, whatever the kernel still does.
        var connecting = Task.Factory.StartNew(() => ConnectBlocking(addresses, port, connectTimeout, cancellationToken),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var socket = await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        var c = new RtspConnection(socket, limits);
        var reader = new Thread(c.ReadLoop) { IsBackground = true, Name = "rtsp-read" };
        reader.Start();
        return c;
    }

    private static Socket ConnectBlocking(IPAddress[] addresses, int port, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        var socket = BlockingConnect.Connect(addresses, port, connectTimeout, cancellationToken);
        socket.SendTimeout = (int)WriteTimeout.TotalMilliseconds;
        return socket;
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
            SendAll(bytes.Span);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void SendAll(ReadOnlySpan<byte> bytes)
    {
        try
        {
            while (!bytes.IsEmpty) bytes = bytes[_socket.Send(bytes)..];
        }
        catch (SocketException e)
        {
            throw new IOException(e.Message, e);
        }
    }

    private void ReadLoop()
    {
        var buffer = new byte[InitialBufferBytes];
        var filled = 0;
        try
        {
            while (true)
            {
                if (filled == buffer.Length)
                {
                    // The parser throws for anything over its limits before this could be reached.
                    if (buffer.Length >= _maxBufferBytes) throw new RtspProtocolException($"more than {_maxBufferBytes} bytes without a complete message");
                    Array.Resize(ref buffer, Math.Min(_maxBufferBytes, buffer.Length * 2));
                }
                int read;
                try
                {
                    read = _socket.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
                }
                catch (Exception e) when (_closing && e is SocketException or ObjectDisposedException)
                {
                    break;
                }
                if (read == 0)
                {
                    if (_closing) break;
                    throw new RtspClientException(filled > 0 ? "the server closed the connection in the middle of a message" : "the server closed the connection");
                }
                filled += read;
                var consumed = Dispatch(buffer, filled, out var replies);
                if (consumed > 0)
                {
                    buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                    filled -= consumed;
                }
                if (replies is not null)
                {
                    _writeLock.Wait();
                    try
                    {
                        foreach (var reply in replies) SendAll(RtspWriter.ToBytes(reply));
                    }
                    finally
                    {
                        _writeLock.Release();
                    }
                }
            }
            _completion.TrySetResult();
        }
        catch (Exception e) when (_closing && e is SocketException or ObjectDisposedException or IOException)
        {
            _completion.TrySetResult();
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            _completion.TrySetException(new RtspClientException("the RTSP connection failed: " + e.Message, e));
        }
        catch (Exception e)
        {
            // Protocol errors and anything a frame handler threw: the session ends with the reason.
            _completion.TrySetException(e);
        }
    }

    private int Dispatch(byte[] buffer, int filled, out List<RtspResponse>? replies)
    {
        replies = null; // server requests are rare; no list per read
        var offset = 0;
        while (offset < filled)
        {
            if (buffer[offset] == RtspParser.InterleavedMarker)
            {
                // Lent to the handler in place, not copied out as InterleavedFrame.TryParse does.
                if (!InterleavedFrame.TryReadHeader(buffer.AsSpan(offset, filled - offset), out var channel, out var length)
                    || filled - offset < InterleavedFrame.HeaderLength + length) break;
                FrameReceived?.Invoke(new InterleavedFrame(channel, buffer.AsMemory(offset + InterleavedFrame.HeaderLength, length)));
                offset += InterleavedFrame.HeaderLength + length;
                continue;
            }
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, offset, filled - offset));
            if (!RtspParser.TryParseMessage(ref reader, out var message, _limits)) break;
            offset += (int)reader.Consumed;
            switch (message)
            {
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
        return offset;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _closing = true;
        // shutdown(2) wakes the reader out of its blocking recv (close alone would not on Linux).
        try { _socket.Shutdown(SocketShutdown.Both); }
        catch (SocketException) { /* not connected any more */ }
        try { await Completion.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
        catch (Exception) { /* the reader's error was already observed or no longer matters */ }
        _socket.Dispose();
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

    /// <summary>Creates the exception for an RTSP error status, with its cause.</summary>
    public RtspClientException(string message, int statusCode, Exception innerException) : base(message, innerException) => StatusCode = statusCode;

    /// <summary>The RTSP status code that caused the failure, when one did (0 otherwise).</summary>
    public int StatusCode { get; }
}
