using System.Diagnostics;
using System.Net.Sockets;

namespace Pinhole.Transport.Sockets;

/// <summary>
/// A stream over a connected TCP socket in non-blocking mode that never enters .NET's async socket
/// engine: a read waits in <c>poll</c> on the caller's own thread (no epoll thread, no pool thread
/// woken per message), and a write never blocks: what the kernel does not take at once is kept, in
/// order, as the pending tail, until <see cref="FlushPending"/> pushes it out. Any later write is
/// appended behind the tail, so bytes keep their order whoever writes them.
/// </summary>
/// <remarks>One reader at a time; writes may come from several threads. Owns the socket.</remarks>
internal sealed class NonBlockingSocketStream : Stream
{
    private readonly Socket _socket;
    private readonly Lock _tailLock = new();
    private byte[] _tail = [];
    private int _tailStart, _tailEnd;
    private volatile bool _hasTail;
    private long _deadline = long.MaxValue;

    /// <summary>Wraps <paramref name="socket"/>, which is switched to non-blocking mode.</summary>
    public NonBlockingSocketStream(Socket socket)
    {
        _socket = socket ?? throw new ArgumentNullException(nameof(socket));
        _socket.Blocking = false;
    }

    /// <summary>The socket, for options (its I/O belongs to this stream).</summary>
    public Socket Socket => _socket;

    /// <summary>Bytes written but not yet taken by the kernel.</summary>
    public bool HasPending => _hasTail;

    /// <summary>
    /// While set, a read or flush that would wait past this <see cref="Stopwatch"/> timestamp throws
    /// <see cref="TimeoutException"/> (the handshake's bound); <see cref="long.MaxValue"/> waits for ever.
    /// </summary>
    public long Deadline { get => Interlocked.Read(ref _deadline); set => Interlocked.Exchange(ref _deadline, value); }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>
    /// Called on the reading thread while a read waits: when it starts waiting and
    /// <see cref="WaitingInterval"/> has passed since the last call, and again each time it has
    /// waited that long. Lets the reader do periodic checks (a dead peer, heartbeats) on the thread
    /// that waits anyway, without a timer, and a peer that trickles bytes cannot hold them off. It
    /// must not read from the stream; it may <see cref="Abort"/>.
    /// </summary>
    public Action? Waiting { get; set; }

    /// <summary>How often <see cref="Waiting"/> runs; infinite (the default) never.</summary>
    public TimeSpan WaitingInterval { get; set; } = Timeout.InfiniteTimeSpan;

    private long _nextWaiting;

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        while (true)
        {
            // Wait first: the reader mostly waits for the peer, and poll+recv is one syscall fewer
            // than a recv that finds nothing, then poll, then recv.
            TimeSpan? slice = null;
            if (Waiting is { } waiting && WaitingInterval > TimeSpan.Zero)
            {
                var now = Stopwatch.GetTimestamp();
                if (now >= _nextWaiting)
                {
                    waiting();
                    now = Stopwatch.GetTimestamp();
                    _nextWaiting = now + (long)(WaitingInterval.TotalSeconds * Stopwatch.Frequency);
                }
                slice = Stopwatch.GetElapsedTime(now, _nextWaiting);
            }
            if (!Wait(SelectMode.SelectRead, slice)) continue;
            var n = _socket.Receive(buffer, SocketFlags.None, out var error);
            switch (error)
            {
                case SocketError.Success: return n;
                case SocketError.WouldBlock or SocketError.Interrupted: continue;
                default: throw Failed(error, "receive");
            }
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        lock (_tailLock)
        {
            if (!_hasTail) buffer = buffer[SendSome(buffer)..];
            if (!buffer.IsEmpty) Append(buffer);
        }
    }

    /// <summary>
    /// Blocks until every pending byte is in the kernel. Checks <paramref name="cancellationToken"/>
    /// every quarter second while the peer is not reading.
    /// </summary>
    public void FlushPending(CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_tailLock)
            {
                if (!_hasTail) return;
                _tailStart += SendSome(_tail.AsSpan(_tailStart, _tailEnd - _tailStart));
                if (_tailStart == _tailEnd)
                {
                    _tailStart = _tailEnd = 0;
                    _hasTail = false;
                    // A tail that held a big keyframe is not kept for good.
                    if (_tail.Length > 1 << 20) _tail = [];
                    return;
                }
            }
            cancellationToken.ThrowIfCancellationRequested();
            Wait(SelectMode.SelectWrite, TimeSpan.FromMilliseconds(250));
        }
    }

    public override void Flush() { }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Shuts the socket down both ways, which wakes any thread waiting on it, then closes it.</summary>
    public void Abort()
    {
        try { _socket.Shutdown(SocketShutdown.Both); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        _socket.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Abort();
        base.Dispose(disposing);
    }

    private int SendSome(ReadOnlySpan<byte> data)
    {
        var sent = 0;
        while (sent < data.Length)
        {
            var n = _socket.Send(data[sent..], SocketFlags.None, out var error);
            switch (error)
            {
                case SocketError.Success: sent += n; break;
                case SocketError.WouldBlock: return sent;
                case SocketError.Interrupted: break;
                default: throw Failed(error, "send");
            }
        }
        return sent;
    }

    private void Append(ReadOnlySpan<byte> data)
    {
        var used = _tailEnd - _tailStart;
        if (_tail.Length - _tailEnd < data.Length)
        {
            var bigger = _tail.Length - used >= data.Length && _tail.Length > 0 ? _tail : new byte[Math.Max(used + data.Length, Math.Max(4096, _tail.Length * 2))];
            _tail.AsSpan(_tailStart, used).CopyTo(bigger);
            _tail = bigger;
            _tailStart = 0;
            _tailEnd = used;
        }
        data.CopyTo(_tail.AsSpan(_tailEnd));
        _tailEnd += data.Length;
        _hasTail = true;
    }

    // True when the socket is ready, false when the slice (or the deadline) ran out first.
    private bool Wait(SelectMode mode, TimeSpan? slice = null)
    {
        var deadline = Deadline;
        long micros = -1;
        if (deadline != long.MaxValue)
        {
            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero) throw new TimeoutException("the relay did not answer in time");
            micros = (long)left.TotalMicroseconds;
        }
        if (slice is { } s && (micros < 0 || micros > s.TotalMicroseconds)) micros = (long)s.TotalMicroseconds;
        // poll(2) counts whole milliseconds: round up, so a wait never ends early and then spins
        // on zero-millisecond polls for the rest of it.
        if (micros >= 0) micros = Math.Min(int.MaxValue / 1000, Math.Max(1, (micros + 999) / 1000)) * 1000;
        try
        {
            return _socket.Poll(micros < 0 ? -1 : (int)micros, mode);
        }
        catch (SocketException e)
        {
            throw new IOException(e.Message, e);
        }
    }

    private static IOException Failed(SocketError error, string what)
    {
        var e = new SocketException((int)error);
        return new IOException($"{what} failed: {e.Message}", e);
    }
}
