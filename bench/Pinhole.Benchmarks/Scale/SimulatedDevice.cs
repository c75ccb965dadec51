using System.Diagnostics;
using System.Globalization;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.Benchmarks.Scale;

/// <summary>
/// One simulated device: a real uplink session made with the device's own connection code
/// (<see cref="UplinkClientConnection"/>: WebSocket upgrade with the device id and token, Hello,
/// Welcome, StreamAnnounce, then MediaFrames), sending <see cref="StampedClip"/> in a loop at the
/// recorded pace. Frames go out from <see cref="DevicePacer"/>'s thread; relay messages are read on a
/// thread of this device (the connection's reads block), which answers pings.
/// </summary>
internal sealed class SimulatedDevice : IDisposable
{
    public const string Camera = "cam";
    private const ushort StreamId = 1;

    private readonly StampedClip _clip;
    private readonly Lock _sentLock = new();
    private readonly List<long> _sentClock = [0]; // index = sequence; [0] unused
    private UplinkClientConnection? _link;
    private Thread? _receiver;
    private Task? _flushing;
    private byte[] _buffer = new byte[64 * 1024];
    private int _clipIndex;
    private long _pts;
    private ulong _sequence;
    private long _skipped, _acks;
    private volatile string? _failure;

    public SimulatedDevice(int index, StampedClip clip)
    {
        Index = index;
        _clip = clip;
        Id = "sim" + index.ToString("000", CultureInfo.InvariantCulture);
        Token = "scale-bench-token-" + Id + "-0123456789";
        // Devices start at different keyframes of the clip, so their big frames do not line up.
        var keyframes = Enumerable.Range(0, clip.Units.Count).Where(i => clip.Units[i].IsKeyframe).ToList();
        _clipIndex = keyframes[index % keyframes.Count];
    }

    public int Index { get; }

    public string Id { get; }

    public string Token { get; }

    /// <summary>Frames sent (the last sequence number).</summary>
    public long FramesSent => (long)Interlocked.Read(ref _sequence);

    /// <summary>Frames not sent because the uplink's socket was still backed up (the relay read too slowly).</summary>
    public long FramesSkipped => Interlocked.Read(ref _skipped);

    /// <summary>Acks received from the relay.</summary>
    public long Acks => Interlocked.Read(ref _acks);

    /// <summary>Why the session ended, or null while it runs.</summary>
    public string? Failure => _failure;

    /// <summary>Connects, completes the handshake and announces the camera.</summary>
    /// <exception cref="InvalidOperationException">The relay refused the device or answered something else than Welcome.</exception>
    public async Task ConnectAsync(Uri relay, CancellationToken cancellationToken)
    {
        var options = new UplinkConnectOptions
        {
            Headers =
            [
                new(UplinkProtocol.DeviceHeader, Id),
                new("Authorization", "Bearer " + Token),
                new(UplinkProtocol.VersionHeader, UplinkProtocol.Version.ToString(CultureInfo.InvariantCulture)),
            ],
            SystemProxy = null,
            ConnectTimeout = TimeSpan.FromSeconds(30),
        };
        var link = await UplinkClientConnection.ConnectAsync(relay, options, cancellationToken);
        try
        {
            link.Send(new Hello(UplinkProtocol.Version, UplinkProtocol.Version, UplinkCapabilities.Media, "pinhole-scale-bench/1"), cancellationToken);
            var answer = await Task.Factory.StartNew(link.Receive, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
                .WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            if (answer is not Welcome)
                throw new InvalidOperationException($"{Id}: expected Welcome, got {(answer is Reject r ? $"Reject {r.Reason.ToToken()}: {r.Text}" : answer?.GetType().Name ?? "close")}");
            link.Send(new StreamAnnounce(StreamId, Camera, [_clip.Track]), cancellationToken);
        }
        catch
        {
            link.Dispose();
            throw;
        }
        _link = link;
        _receiver = new Thread(ReceiveLoop) { IsBackground = true, Name = "uplink-read " + Id };
        _receiver.Start();
    }

    private void ReceiveLoop()
    {
        var link = _link!;
        try
        {
            while (true)
            {
                switch (link.Receive())
                {
                    case null:
                        _failure ??= "the relay closed the uplink";
                        return;
                    case Ping ping:
                        link.TrySend(new Pong(ping.Timestamp));
                        break;
                    case Ack:
                        Interlocked.Increment(ref _acks);
                        break;
                    case Goodbye bye:
                        _failure ??= $"the relay said goodbye: {bye.Reason.ToToken()}: {bye.Text}";
                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or UplinkProtocolException or ObjectDisposedException or InvalidOperationException)
        {
            _failure ??= "uplink read failed: " + e.Message;
        }
    }

    /// <summary>Sends the next frame of the clip (called by the pacer at the frame's time).</summary>
    public void SendNext(long now)
    {
        var link = _link;
        if (link is null || _failure is not null) return;
        var unit = _clip.Units[_clipIndex];
        _clipIndex = (_clipIndex + 1) % _clip.Units.Count;
        var pts = _pts;
        _pts += 90_000 / StampedClip.Fps;
        if (_flushing is { IsCompleted: false } || link.HasPendingBytes)
        {
            // The kernel has not taken the last frame (or a pong) yet: like the edge, do not queue behind it.
            Interlocked.Increment(ref _skipped);
            if (_flushing is not { IsCompleted: false }) _flushing = Task.Run(() => Flush(link));
            return;
        }
        var sequence = _sequence + 1;
        var need = 4 + StampedClip.SeiNalSize + unit.Data.Length;
        if (_buffer.Length < need) _buffer = new byte[need * 2];
        var length = StampedClip.WriteStamped(_buffer, unit.Data.Span, (uint)Index, sequence, now);
        try
        {
            var whole = link.TrySendFrame(sequence, StreamId, (ulong)(Stopwatch.GetElapsedTime(0, now).Ticks / 10),
                new AccessUnit(0, pts, pts, unit.IsKeyframe, _buffer.AsMemory(0, length)));
            lock (_sentLock) _sentClock.Add(now);
            Interlocked.Exchange(ref _sequence, sequence);
            if (!whole) _flushing = Task.Run(() => Flush(link));
        }
        catch (IOException e)
        {
            _failure ??= "uplink send failed: " + e.Message;
        }
    }

    private void Flush(UplinkClientConnection link)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            link.FlushPending(cts.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            _failure ??= "uplink flush failed: " + e.Message;
        }
    }

    /// <summary>Load-generator clock (<see cref="Stopwatch.GetTimestamp"/>) when frame <paramref name="sequence"/> was sent.</summary>
    public long SentAt(ulong sequence)
    {
        lock (_sentLock) return sequence < (ulong)_sentClock.Count ? _sentClock[(int)sequence] : 0;
    }

    /// <summary>Sequence numbers of the frames sent between <paramref name="from"/> and <paramref name="until"/> (clock values).</summary>
    public (ulong First, ulong Last) SentBetween(long from, long until)
    {
        lock (_sentLock)
        {
            ulong first = 0, last = 0;
            for (var s = 1; s < _sentClock.Count; s++)
            {
                if (_sentClock[s] < from) continue;
                if (_sentClock[s] > until) break;
                if (first == 0) first = (ulong)s;
                last = (ulong)s;
            }
            return (first, last);
        }
    }

    public void Dispose()
    {
        var link = Interlocked.Exchange(ref _link, null);
        if (link is null) return;
        link.Close(new Goodbye(UplinkReason.Shutdown, "load test over"), 1000, "shutdown", TimeSpan.FromMilliseconds(200));
        link.Dispose();
        _receiver?.Join(TimeSpan.FromSeconds(2));
    }
}

/// <summary>
/// Sends every device's frames at the recorded pace from one thread: device <c>i</c> of <c>n</c> sends
/// frame <c>k</c> at <c>start + k/25 s + i/n × 1/25 s</c>, so the devices' frames are spread over each
/// frame interval instead of leaving together.
/// </summary>
internal sealed class DevicePacer : IDisposable
{
    private readonly IReadOnlyList<SimulatedDevice> _devices;
    private readonly Thread _thread;
    private volatile bool _stop;

    public DevicePacer(IReadOnlyList<SimulatedDevice> devices)
    {
        _devices = devices;
        _thread = new Thread(Run) { IsBackground = true, Name = "device-pacer" };
        _thread.Start();
    }

    /// <summary>Frames that left more than one frame interval late (the load generator fell behind).</summary>
    public long LateFrames;

    private void Run()
    {
        var interval = Stopwatch.Frequency / StampedClip.Fps;
        var start = Stopwatch.GetTimestamp();
        var n = _devices.Count;
        for (long slot = 0; !_stop; slot++)
        {
            var frame = slot / n;
            var i = (int)(slot % n);
            var due = start + frame * interval + i * interval / n;
            var now = Stopwatch.GetTimestamp();
            var wait = due - now;
            if (wait > 0)
            {
                var ms = (int)(wait * 1000 / Stopwatch.Frequency);
                if (ms >= 1) Thread.Sleep(ms);
                while ((now = Stopwatch.GetTimestamp()) < due) Thread.Yield();
            }
            else if (-wait > interval)
            {
                Interlocked.Increment(ref LateFrames);
            }
            _devices[i].SendNext(now);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join(TimeSpan.FromSeconds(2));
    }
}
