using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Pinhole.Transport.Uplink;

/// <summary>How a <see cref="TunnelMux"/> hands messages to its uplink.</summary>
public interface ITunnelTransport
{
    /// <summary>Queues a small control message (open, accept, window, reset) ahead of data. Never blocks; false when the uplink is gone.</summary>
    bool SendControl(UplinkMessage message);

    /// <summary>Queues a <see cref="TunnelData"/> or <see cref="TunnelClose"/>, in order, behind everything more urgent (live video).
    /// Completes when the message is queued; waits while the tunnel queue is full (backpressure).</summary>
    /// <exception cref="IOException">The uplink is gone.</exception>
    ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken);
}

/// <summary>Limits and window sizes of the tunnel streams of one uplink.</summary>
public sealed record TunnelOptions
{
    /// <summary>Receive window a stream starts with. Default 256 KiB.</summary>
    public int InitialWindow { get; init; } = 256 * 1024;

    /// <summary>Largest receive window a stream grows to when its data drains faster than the window covers a round trip. Default 8 MiB.</summary>
    public int MaxWindow { get; init; } = 8 * 1024 * 1024;

    /// <summary>Most open streams per uplink; more are refused with <see cref="TunnelResetCode.Limit"/>. Default 256.</summary>
    public int MaxStreams { get; init; } = 256;

    /// <summary>A stream with no byte in either direction for this long is reset. Default 10 minutes.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How long an opener waits for the device's accept. Default 10 s.</summary>
    public TimeSpan OpenTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>True on the device: the streams it opens (to services the relay offers) take ids with the high bit set, so
    /// they never collide with the relay's, which keep it clear.</summary>
    public bool OpensHighIds { get; init; }

    /// <summary>The uplink's current round-trip time (for growing windows), or null when unknown.</summary>
    public Func<TimeSpan?>? RoundTripTime { get; init; }

    /// <summary>How many bytes one <see cref="TunnelData"/> message may carry now, asked at every write (clamped to
    /// 1..<see cref="UplinkProtocol.MaxTunnelDataBytes"/>); null: always the most. The device sizes its messages to its link
    /// (<see cref="TunnelMessageSize.ForRate"/>): a message, once in the socket, is sent whole, and a video frame waits behind it.</summary>
    public Func<int>? DataMessageBytes { get; init; }
}

/// <summary>A tunnel stream was reset by either end (or refused when opened).</summary>
public sealed class TunnelResetException(TunnelResetCode code, string message) : IOException(message)
{
    /// <summary>Why.</summary>
    public TunnelResetCode Code { get; } = code;
}

/// <summary>
/// The tunnel streams of one uplink session (docs/uplink-protocol.md, tunnel channel): routes
/// <see cref="TunnelOpen"/> … <see cref="TunnelReset"/> to <see cref="TunnelStream"/>s, enforces each
/// stream's receive window and the stream limit, and reaps idle streams. The relay opens streams
/// (<see cref="OpenAsync"/>); the device accepts or refuses them (<see cref="Accepting"/>). Thread-safe;
/// <see cref="OnMessage"/> is called by the session's one receiving loop.
/// </summary>
public sealed class TunnelMux : IDisposable
{
    private readonly ConcurrentDictionary<uint, TunnelStream> _streams = new();
    private readonly TimeProvider _time;
    private uint _nextId;
    private long _opened, _reaped;
    private volatile bool _disposed;

    /// <summary>Creates the streams' home for one uplink session.</summary>
    public TunnelMux(ITunnelTransport transport, TunnelOptions? options = null, TimeProvider? time = null)
    {
        Transport = transport ?? throw new ArgumentNullException(nameof(transport));
        Options = options ?? new TunnelOptions();
        if (Options.InitialWindow <= 0 || Options.MaxWindow < Options.InitialWindow) throw new ArgumentException("windows must be positive, max at least initial", nameof(options));
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The session's uplink.</summary>
    public ITunnelTransport Transport { get; }

    /// <summary>Windows and limits.</summary>
    public TunnelOptions Options { get; }

    /// <summary>Device side: called for every stream the relay opens (its <see cref="TunnelStream.Name"/> is the asked name).
    /// The handler calls <see cref="TunnelStream.Accept"/> or <see cref="TunnelStream.Refuse"/>, and owns the stream. Null refuses every open.</summary>
    public Action<TunnelStream>? Accepting { get; set; }

    /// <summary>Open streams now.</summary>
    public int Count => _streams.Count;

    /// <summary>Streams opened (either side) since this mux was created.</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>Streams reset because they were idle too long.</summary>
    public long Reaped => Interlocked.Read(ref _reaped);

    internal TimeProvider Time => _time;

    internal int DataMessageBytes => Options.DataMessageBytes is { } size ? Math.Clamp(size(), 1, UplinkProtocol.MaxTunnelDataBytes) : UplinkProtocol.MaxTunnelDataBytes;

    /// <summary>The stream id bit of streams the device opened (<see cref="TunnelOptions.OpensHighIds"/>).</summary>
    public const uint HighIdBit = 0x8000_0000;

    /// <summary>Opens a stream: on the relay, to the device's exposed service <paramref name="name"/>; on the device, to a service the relay
    /// offers (<see cref="UplinkCapabilities.DeviceStreams"/>). Waits for the other end's answer.</summary>
    /// <exception cref="TunnelResetException">The other end refused (not exposed, cannot connect), too many streams, or no answer in time.</exception>
    public async Task<TunnelStream> OpenAsync(string name, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!UplinkProtocol.IsValidCameraName(name)) throw new ArgumentException($"tunnel name '{name}' must be 1-64 of A-Z a-z 0-9 . _ -", nameof(name));
        if (_streams.Count >= Options.MaxStreams)
            throw new TunnelResetException(TunnelResetCode.Limit, $"too many open tunnel streams on this uplink ({Options.MaxStreams})");
        uint id;
        TunnelStream stream;
        while (true)
        {
            var n = Interlocked.Increment(ref _nextId) & (HighIdBit - 1);
            if (n == 0) continue;
            id = n | (Options.OpensHighIds ? HighIdBit : 0);
            stream = new TunnelStream(this, id, name, sendWindow: 0);
            if (_streams.TryAdd(id, stream)) break;
        }
        Interlocked.Increment(ref _opened);
        if (!Transport.SendControl(new TunnelOpen(id, (uint)Options.InitialWindow, name)))
        {
            stream.Fail(new TunnelResetException(TunnelResetCode.Cancelled, "the uplink is gone"));
            throw new TunnelResetException(TunnelResetCode.Cancelled, "the uplink is gone");
        }
        try
        {
            await stream.Accepted.WaitAsync(Options.OpenTimeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            stream.Reset(TunnelResetCode.Timeout, "no answer to the open");
            throw new TunnelResetException(TunnelResetCode.Timeout, $"the device did not answer within {Options.OpenTimeout.TotalSeconds:0.#} s");
        }
        catch (OperationCanceledException)
        {
            stream.Reset(TunnelResetCode.Cancelled, "the opener went away");
            throw;
        }
        return stream;
    }

    /// <summary>Handles one tunnel-channel message from the peer.</summary>
    /// <exception cref="UplinkProtocolException">A message that breaks the session's rules (a reused stream id).</exception>
    public void OnMessage(UplinkMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_disposed) return;
        switch (message)
        {
            case TunnelOpen open:
                if (_streams.ContainsKey(open.StreamId)) throw new UplinkProtocolException($"tunnel stream {open.StreamId} opened twice");
                if (Accepting is not { } accepting)
                {
                    Transport.SendControl(new TunnelReset(open.StreamId, TunnelResetCode.NotExposed, "this end accepts no tunnels"));
                    return;
                }
                if (_streams.Count >= Options.MaxStreams)
                {
                    Transport.SendControl(new TunnelReset(open.StreamId, TunnelResetCode.Limit, $"too many open tunnel streams ({Options.MaxStreams})"));
                    return;
                }
                var stream = new TunnelStream(this, open.StreamId, open.Name, open.Window);
                _streams[open.StreamId] = stream;
                Interlocked.Increment(ref _opened);
                accepting(stream);
                break;
            case TunnelAccept accept:
                Find(accept.StreamId)?.OnAccepted(accept.Window);
                break;
            case TunnelData data:
                // Data for a stream that is gone (reset while the data was in flight) is dropped.
                Find(data.StreamId)?.OnData(data.Data);
                break;
            case TunnelWindow window:
                Find(window.StreamId)?.OnWindow(window.Increment);
                break;
            case TunnelClose close:
                Find(close.StreamId)?.OnRemoteClose();
                break;
            case TunnelReset reset:
                Find(reset.StreamId)?.Fail(new TunnelResetException(reset.Code, reset.Text));
                break;
        }
    }

    /// <summary>Resets every stream idle for longer than <see cref="TunnelOptions.IdleTimeout"/>, and opens never answered. Call about once a second.</summary>
    public void Reap()
    {
        var now = _time.GetTimestamp();
        foreach (var stream in _streams.Values)
        {
            if (_time.GetElapsedTime(stream.LastActivity, now) <= Options.IdleTimeout) continue;
            Interlocked.Increment(ref _reaped);
            stream.Reset(TunnelResetCode.Timeout, $"idle for more than {Options.IdleTimeout.TotalSeconds:0} s");
        }
    }

    private TunnelStream? Find(uint id) => _streams.GetValueOrDefault(id);

    internal void Remove(TunnelStream stream) => _streams.TryRemove(new KeyValuePair<uint, TunnelStream>(stream.Id, stream));

    /// <summary>The uplink ended: every stream fails at once (nothing more is sent).</summary>
    public void Dispose()
    {
        _disposed = true;
        foreach (var stream in _streams.Values) stream.Fail(new TunnelResetException(TunnelResetCode.Cancelled, "the uplink ended"));
    }
}

/// <summary>
/// One tunnel stream: a full-duplex byte stream inside the uplink, with TCP's half-close. Reads take
/// what the peer sent (0 after its <see cref="TunnelClose"/>); writes wait for the peer's window.
/// Disposing a stream that is not closed both ways resets it.
/// </summary>
public sealed class TunnelStream : Stream
{
    private readonly TunnelMux _mux;
    private readonly Channel<ReadOnlyMemory<byte>> _incoming = Channel.CreateUnbounded<ReadOnlyMemory<byte>>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private ReadOnlyMemory<byte> _current;
    private long _sendCredit, _recvCredit, _recvWindow, _consumed, _lastUpdateAt;
    private long _bytesIn, _bytesOut;
    private TaskCompletionSource? _creditWaiter;
    private Exception? _failure;
    private bool _localClosed, _remoteClosed, _removed;
    internal long LastActivity;

    internal TunnelStream(TunnelMux mux, uint id, string name, uint sendWindow)
    {
        _mux = mux;
        Id = id;
        Name = name;
        _sendCredit = sendWindow;
        _recvWindow = _recvCredit = mux.Options.InitialWindow;
        LastActivity = _lastUpdateAt = mux.Time.GetTimestamp();
    }

    /// <summary>The stream id within its uplink.</summary>
    public uint Id { get; }

    /// <summary>The exposed service's name.</summary>
    public string Name { get; }

    /// <summary>Bytes received from the peer.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);

    /// <summary>Bytes sent to the peer.</summary>
    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary>The current receive window (grows toward <see cref="TunnelOptions.MaxWindow"/>).</summary>
    public long ReceiveWindow { get { lock (_lock) return _recvWindow; } }

    internal Task Accepted => _accepted.Task;

    /// <summary>Device side: the target is connected; tell the relay and start carrying bytes.</summary>
    public void Accept()
    {
        _accepted.TrySetResult();
        _mux.Transport.SendControl(new TunnelAccept(Id, (uint)_mux.Options.InitialWindow));
    }

    /// <summary>Device side: refuse the open (the stream is gone afterwards).</summary>
    public void Refuse(TunnelResetCode code, string text) => Reset(code, text);

    /// <summary>Aborts the stream both ways and tells the peer why.</summary>
    public void Reset(TunnelResetCode code, string text)
    {
        lock (_lock)
        {
            if (_failure is not null || (_localClosed && _remoteClosed)) return;
        }
        _mux.Transport.SendControl(new TunnelReset(Id, code, text.Length > 500 ? text[..500] : text));
        Fail(new TunnelResetException(code, text));
    }

    /// <summary>Half-close: no more bytes from this end (the peer reads 0); reading goes on.</summary>
    public async Task CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_failure is not null) throw new IOException("the tunnel stream was reset", _failure);
            if (_localClosed) return;
            _localClosed = true;
        }
        await _mux.Transport.SendDataAsync(new TunnelClose(Id), cancellationToken);
        RemoveWhenDone();
    }

    internal void OnAccepted(uint window)
    {
        OnWindow(window);
        _accepted.TrySetResult();
    }

    internal void OnData(ReadOnlyMemory<byte> data)
    {
        bool overrun;
        lock (_lock)
        {
            if (_failure is not null || _remoteClosed) return;
            overrun = data.Length > _recvCredit;
            if (!overrun) _recvCredit -= data.Length;
        }
        if (overrun)
        {
            Reset(TunnelResetCode.FlowControl, "data beyond the receive window");
            return;
        }
        Interlocked.Add(ref _bytesIn, data.Length);
        Volatile.Write(ref LastActivity, _mux.Time.GetTimestamp());
        _incoming.Writer.TryWrite(data);
    }

    internal void OnWindow(uint increment)
    {
        TaskCompletionSource? waiter;
        bool overflow;
        lock (_lock)
        {
            _sendCredit += increment;
            overflow = _sendCredit > int.MaxValue;
            waiter = _creditWaiter;
            _creditWaiter = null;
        }
        waiter?.TrySetResult();
        if (overflow) Reset(TunnelResetCode.FlowControl, "send window above 2 GiB");
    }

    internal void OnRemoteClose()
    {
        lock (_lock)
        {
            if (_failure is not null) return;
            _remoteClosed = true;
        }
        _incoming.Writer.TryComplete();
        RemoveWhenDone();
    }

    internal void Fail(Exception failure)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_failure is not null) return;
            _failure = failure;
            waiter = _creditWaiter;
            _creditWaiter = null;
        }
        waiter?.TrySetResult();
        _accepted.TrySetException(failure);
        _accepted.Task.Exception?.Handle(_ => true);
        _incoming.Writer.TryComplete(failure);
        Remove();
    }

    private void RemoveWhenDone()
    {
        lock (_lock)
        {
            if (!(_localClosed && _remoteClosed)) return;
        }
        Remove();
    }

    private void Remove()
    {
        lock (_lock)
        {
            if (_removed) return;
            _removed = true;
        }
        _mux.Remove(this);
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty) return 0;
        while (_current.IsEmpty)
        {
            try
            {
                if (!await _incoming.Reader.WaitToReadAsync(cancellationToken)) return 0;
            }
            catch (ChannelClosedException e)
            {
                throw new IOException(e.InnerException?.Message ?? "the tunnel stream was reset", e.InnerException ?? e);
            }
            catch (TunnelResetException e)
            {
                throw new TunnelResetException(e.Code, e.Message);
            }
            _incoming.Reader.TryRead(out _current);
        }
        var n = Math.Min(buffer.Length, _current.Length);
        _current[..n].CopyTo(buffer);
        _current = _current[n..];
        Consumed(n);
        return n;
    }

    // The reader took n bytes: once half the window is used, give it back to the sender, grown when the
    // window drained within about two round trips (then it, not the link, limited the stream).
    private void Consumed(int n)
    {
        uint increment;
        lock (_lock)
        {
            if (_failure is not null || _remoteClosed) return;
            _consumed += n;
            if (_consumed < _recvWindow / 2) return;
            var now = _mux.Time.GetTimestamp();
            var rtt = _mux.Options.RoundTripTime?.Invoke();
            var grow = _recvWindow < _mux.Options.MaxWindow && rtt is { } r && r > TimeSpan.Zero
                && _mux.Time.GetElapsedTime(_lastUpdateAt, now) < r * 2;
            var extra = grow ? Math.Min(_recvWindow, _mux.Options.MaxWindow - _recvWindow) : 0;
            _recvWindow += extra;
            increment = (uint)(_consumed + extra);
            _recvCredit += increment;
            _consumed = 0;
            _lastUpdateAt = now;
        }
        _mux.Transport.SendControl(new TunnelWindow(Id, increment));
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            var n = await TakeCreditAsync(Math.Min(buffer.Length, _mux.DataMessageBytes), cancellationToken);
            await _mux.Transport.SendDataAsync(new TunnelData(Id, buffer[..n].ToArray()), cancellationToken);
            Interlocked.Add(ref _bytesOut, n);
            Volatile.Write(ref LastActivity, _mux.Time.GetTimestamp());
            buffer = buffer[n..];
        }
    }

    private async ValueTask<int> TakeCreditAsync(int wanted, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_failure is not null) throw new IOException("the tunnel stream was reset: " + _failure.Message, _failure);
                if (_localClosed) throw new InvalidOperationException("write after the stream's writes were completed");
                if (_sendCredit > 0)
                {
                    var take = (int)Math.Min(wanted, _sendCredit);
                    _sendCredit -= take;
                    return take;
                }
                _creditWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _creditWaiter.Task;
            }
            await wait.WaitAsync(cancellationToken);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            bool clean;
            lock (_lock) clean = _failure is not null || (_localClosed && _remoteClosed);
            if (!clean) Reset(TunnelResetCode.Cancelled, "closed by the other end's client");
        }
        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override void Flush() { }

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public override bool CanRead => true;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();
}
