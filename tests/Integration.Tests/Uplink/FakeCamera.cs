using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using Pinhole.Streaming;
using Pinhole.Transport.Media;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>A synthetic live H.264 camera: real-time paced frames whose payload carries the frame index.</summary>
internal sealed class FakeCamera(int fps = 25, int gop = 25, int keyframeBytes = 2000, int frameBytes = 500)
{
    public static readonly TrackInfo Track = new()
    {
        Codec = MediaCodec.H264, ClockRate = 90_000, Width = 320, Height = 240,
        ParameterSets = [new byte[] { 0x67, 0x42, 0xc0, 0x0d }, new byte[] { 0x68, 0xce, 0x3c, 0x80 }],
    };

    /// <summary>When each frame was produced (Stopwatch ticks).</summary>
    public ConcurrentDictionary<int, long> Produced { get; } = new();

    public int Gop => gop;

    public async Task RunAsync(IMediaSink sink, int frames, CancellationToken ct)
    {
        sink.OnTracks([Track]);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < frames && !ct.IsCancellationRequested; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / fps) - clock.Elapsed;
            if (due > TimeSpan.Zero) await Task.Delay(due, ct);
            Produced[i] = Stopwatch.GetTimestamp();
            sink.OnAccessUnit(MakeFrame(i, i % gop == 0, i * 90_000L / fps));
        }
    }

    private AccessUnit MakeFrame(int index, bool key, long pts)
    {
        var size = Math.Max(key ? keyframeBytes : frameBytes, 6);
        var data = new byte[4 + size];
        BinaryPrimitives.WriteInt32BigEndian(data, size);
        data[4] = key ? (byte)0x65 : (byte)0x41;
        // The slice header starts with first_mb_in_slice = 0 (ue(v) "1"): each frame is a whole
        // picture, as the relay expects of a keyframe a viewer may start at.
        data[5] = 0x80;
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(6), index);
        return new AccessUnit(0, pts, pts, key, data);
    }

    /// <summary>Builds a one-NAL frame carrying <paramref name="index"/>: an IDR picture when <paramref name="key"/>, else a P slice.</summary>
    public static byte[] Payload(int index, bool key)
    {
        var data = new byte[4 + 6];
        BinaryPrimitives.WriteInt32BigEndian(data, 6);
        data[4] = key ? (byte)0x65 : (byte)0x41;
        data[5] = 0x80;
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(6), index);
        return data;
    }

    public static int IndexOf(in AccessUnit unit) => BinaryPrimitives.ReadInt32BigEndian(unit.Data.Span[6..]);
}

/// <summary>Reads a relay MediaStream as a viewer would and records what arrived and when.</summary>
internal sealed class StreamRecorder : IAsyncDisposable
{
    private readonly MediaSubscription _subscription;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;
    private readonly List<(long At, MediaEvent Event)> _events = [];

    public StreamRecorder(MediaStream stream)
    {
        _subscription = stream.Subscribe() ?? throw new InvalidOperationException("viewer limit");
        _loop = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var e = await _subscription.ReadAsync(_cts.Token);
                    lock (_events) _events.Add((Stopwatch.GetTimestamp(), e));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    public List<(long At, MediaEvent Event)> Events { get { lock (_events) return [.. _events]; } }

    public List<(long At, int Index, bool Key)> Frames =>
        [.. Events.Where(e => e.Event.Kind == MediaEventKind.Frame).Select(e => (e.At, FakeCamera.IndexOf(e.Event.Unit), e.Event.Unit.IsKeyframe))];

    public async Task WaitForAsync(Func<StreamRecorder, bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition(this))
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds} s");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        await _loop;
        _subscription.Dispose();
        _cts.Dispose();
    }
}
