using System.Threading.Channels;
using Pinhole.Transport.Uplink;

namespace Pinhole.Transport.Tests.Uplink;

/// <summary>The tunnel channel's wire format and the stream mux, two muxes wired back to back in memory.</summary>
public class TunnelMuxTests
{
    public static TheoryData<UplinkMessage> Messages() =>
    [
        new TunnelOpen(7, 256 * 1024, "ssh"),
        new TunnelAccept(7, 1 << 20),
        new TunnelWindow(7, 131072),
        new TunnelClose(7),
        new TunnelReset(7, TunnelResetCode.NotExposed, "this device does not expose \"x\""),
    ];

    [Theory]
    [MemberData(nameof(Messages))]
    public void Tunnel_messages_round_trip(UplinkMessage message)
    {
        var bytes = UplinkCodec.Encode(message);
        Assert.Equal(3, bytes[0]);
        Assert.Equal(message, UplinkCodec.ParseOne(bytes, UplinkLimits.Default));
        // Every prefix is "need more data", never an error.
        for (var i = 0; i < bytes.Length; i++)
        {
            var reader = new System.Buffers.SequenceReader<byte>(new System.Buffers.ReadOnlySequence<byte>(bytes, 0, i));
            Assert.False(UplinkCodec.TryParse(ref reader, UplinkLimits.Default, out _));
        }
    }

    [Fact]
    public void Tunnel_data_round_trips_and_its_limits_are_enforced()
    {
        var data = new TunnelData(3, new byte[] { 1, 2, 3 });
        var parsed = Assert.IsType<TunnelData>(UplinkCodec.ParseOne(UplinkCodec.Encode(data), UplinkLimits.Default));
        Assert.Equal([1, 2, 3], parsed.Data.ToArray());
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new TunnelData(3, new byte[UplinkProtocol.MaxTunnelDataBytes + 1])));
        Assert.Throws<ArgumentException>(() => UplinkCodec.Encode(new TunnelData(3, ReadOnlyMemory<byte>.Empty)));
        // Hand-made: an empty data body, a zero window increment, a bad name.
        Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(new byte[] { 3, 3, 0, 0, 0, 4, 0, 0, 0, 3 }, UplinkLimits.Default));
        Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(new byte[] { 3, 4, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0 }, UplinkLimits.Default));
        Assert.Throws<UplinkProtocolException>(() => UplinkCodec.ParseOne(new byte[] { 3, 1, 0, 0, 0, 11, 0, 0, 0, 1, 0, 0, 1, 0, 2, (byte)'a', (byte)'/' }, UplinkLimits.Default));
    }

    [Fact]
    public async Task Bytes_and_half_closes_cross_in_both_directions_and_the_streams_are_removed()
    {
        using var pair = new MuxPair();
        pair.Device.Accepting = s => s.Accept();
        var relay = await pair.Relay.OpenAsync("echo", CancellationToken.None);
        var device = await pair.AcceptedAsync();

        var big = new byte[3 * 1024 * 1024];
        new Random(1).NextBytes(big);
        var reading = ReadAllAsync(device);
        await relay.WriteAsync(big);
        await relay.CompleteWritesAsync();
        Assert.Equal(big, await reading);

        // The other direction still works after the relay's half-close.
        await device.WriteAsync("bye"u8.ToArray());
        await device.CompleteWritesAsync();
        Assert.Equal("bye"u8.ToArray(), await ReadAllAsync(relay));
        Assert.Equal(0, pair.Relay.Count);
        Assert.Equal(0, pair.Device.Count);
        Assert.Equal(big.Length, relay.BytesOut);
    }

    [Fact]
    public async Task A_writer_waits_for_window_and_a_fast_reader_grows_it()
    {
        using var pair = new MuxPair(new TunnelOptions { InitialWindow = 64 * 1024, MaxWindow = 1024 * 1024, RoundTripTime = () => TimeSpan.FromSeconds(1) });
        pair.Device.Accepting = s => s.Accept();
        var relay = await pair.Relay.OpenAsync("bulk", CancellationToken.None);
        var device = await pair.AcceptedAsync();

        // Nobody reads: the writer stops after the window.
        var write = relay.WriteAsync(new byte[200 * 1024]).AsTask();
        await Task.Delay(200);
        Assert.False(write.IsCompleted);
        Assert.Equal(64 * 1024, device.BytesIn);

        // Reading drains it; with a 1 s "RTT" every grant comes fast, so the window doubles up to its maximum.
        var drain = ReadAllAsync(device);
        await write;
        await relay.WriteAsync(new byte[4 * 1024 * 1024]);
        await relay.CompleteWritesAsync();
        Assert.Equal(4 * 1024 * 1024 + 200 * 1024, (await drain).Length);
        Assert.Equal(1024 * 1024, device.ReceiveWindow);
    }

    [Fact]
    public async Task Data_messages_follow_the_size_the_sender_asks_for_at_each_write()
    {
        var size = 10_000;
        using var pair = new MuxPair(new TunnelOptions { DataMessageBytes = () => size });
        pair.Device.Accepting = s => s.Accept();
        _ = await pair.Relay.OpenAsync("bulk", CancellationToken.None);
        var device = await pair.AcceptedAsync();

        await device.WriteAsync(new byte[25_000]);
        size = 0; // nonsense from the callback is clamped: at least 1 byte a message
        await device.WriteAsync(new byte[2]);
        size = 1 << 20; // and at most the protocol's limit
        await device.WriteAsync(new byte[UplinkProtocol.MaxTunnelDataBytes + 5]);
        var sizes = pair.ToRelay.OfType<TunnelData>().Select(d => d.Data.Length).ToArray();
        Assert.Equal([10_000, 10_000, 5_000, 1, 1, UplinkProtocol.MaxTunnelDataBytes, 5], sizes);
    }

    [Theory]
    [InlineData(0, UplinkProtocol.MaxTunnelDataBytes)]          // unknown rate: as large as allowed
    [InlineData(double.NaN, UplinkProtocol.MaxTunnelDataBytes)]
    [InlineData(125_000, TunnelMessageSize.MinBytes)]            // 1 Mbit/s: 12 ms would be 1.5 KB, the floor is 4 KiB
    [InlineData(750_000, 9_000)]                                 // 6 Mbit/s: 12 ms
    [InlineData(2_500_000, 30_000)]                              // 20 Mbit/s
    [InlineData(1e9, UplinkProtocol.MaxTunnelDataBytes)]         // loopback: the ceiling
    public void Message_size_is_about_12_ms_of_the_link(double bytesPerSecond, int expected) =>
        Assert.Equal(expected, TunnelMessageSize.ForRate(bytesPerSecond));

    [Fact]
    public async Task Data_beyond_the_window_resets_the_stream()
    {
        using var pair = new MuxPair(new TunnelOptions { InitialWindow = 1024 });
        pair.Device.Accepting = s => s.Accept();
        _ = await pair.Relay.OpenAsync("x", CancellationToken.None);
        var device = await pair.AcceptedAsync();
        pair.Device.OnMessage(new TunnelData(device.Id, new byte[2048])); // a misbehaving relay
        await Assert.ThrowsAnyAsync<IOException>(() => ReadAllAsync(device));
        Assert.Contains(pair.ToRelay, m => m is TunnelReset { Code: TunnelResetCode.FlowControl });
    }

    [Fact]
    public async Task Refusal_limit_idle_reaping_and_the_end_of_the_uplink()
    {
        var time = new ManualTime();
        using var pair = new MuxPair(new TunnelOptions { MaxStreams = 2, IdleTimeout = TimeSpan.FromMinutes(1) }, time);
        pair.Device.Accepting = s => { if (s.Name == "no") s.Refuse(TunnelResetCode.NotExposed, "this device does not expose \"no\""); else s.Accept(); };

        var refused = await Assert.ThrowsAsync<TunnelResetException>(() => pair.Relay.OpenAsync("no", CancellationToken.None));
        Assert.Equal(TunnelResetCode.NotExposed, refused.Code);
        Assert.Equal(0, pair.Relay.Count);

        var a = await pair.Relay.OpenAsync("a", CancellationToken.None);
        _ = await pair.Relay.OpenAsync("b", CancellationToken.None);
        Assert.Equal(TunnelResetCode.Limit, (await Assert.ThrowsAsync<TunnelResetException>(() => pair.Relay.OpenAsync("c", CancellationToken.None))).Code);

        time.Advance(TimeSpan.FromMinutes(2));
        pair.Relay.Reap();
        Assert.Equal(0, pair.Relay.Count);
        Assert.Equal(2, pair.Relay.Reaped);
        await Assert.ThrowsAnyAsync<IOException>(() => a.WriteAsync(new byte[1]).AsTask());

        var d = await pair.Relay.OpenAsync("d", CancellationToken.None);
        pair.Relay.Dispose(); // the uplink ended
        await Assert.ThrowsAnyAsync<IOException>(() => ReadAllAsync(d));
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var all = new MemoryStream();
        await stream.CopyToAsync(all).WaitAsync(TimeSpan.FromSeconds(10));
        return all.ToArray();
    }

    /// <summary>A relay mux and a device mux, each message encoded and decoded on its way across.</summary>
    [Fact]
    public async Task A_device_opened_stream_takes_a_high_id_and_carries_bytes_both_ways()
    {
        // The device's mux opens (capability 0x40: streams to the relay's services); the relay's accepts.
        using var pair = new MuxPair(new TunnelOptions { OpensHighIds = true });
        var atRelay = new TaskCompletionSource<TunnelStream>(TaskCreationOptions.RunContinuationsAsynchronously);
        pair.Relay.Accepting = s =>
        {
            s.Accept();
            atRelay.TrySetResult(s);
        };
        var device = await pair.Device.OpenAsync("mqtt", CancellationToken.None);
        var relay = await atRelay.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("mqtt", relay.Name);
        Assert.Equal(device.Id, relay.Id);
        Assert.NotEqual(0u, device.Id & TunnelMux.HighIdBit);
        Assert.NotEqual(0u, device.Id & ~TunnelMux.HighIdBit);
        Assert.Contains(pair.ToRelay, m => m is TunnelOpen o && o.StreamId == device.Id && o.Name == "mqtt");

        await device.WriteAsync("CONNECT"u8.ToArray());
        await device.CompleteWritesAsync();
        Assert.Equal("CONNECT"u8.ToArray(), await ReadAllAsync(relay));
        await relay.WriteAsync("CONNACK"u8.ToArray());
        await relay.CompleteWritesAsync();
        Assert.Equal("CONNACK"u8.ToArray(), await ReadAllAsync(device));
        Assert.Equal(0, pair.Device.Count);
        Assert.Equal(0, pair.Relay.Count);
    }

    [Fact]
    public async Task Ids_of_the_two_ends_never_collide()
    {
        using var relayIds = new TunnelMux(new NullTransport(), new TunnelOptions { OpenTimeout = TimeSpan.FromMilliseconds(1) });
        using var deviceIds = new TunnelMux(new NullTransport(), new TunnelOptions { OpenTimeout = TimeSpan.FromMilliseconds(1), OpensHighIds = true });
        var sent = new List<uint>();
        foreach (var mux in new[] { relayIds, deviceIds })
        {
            for (var i = 0; i < 3; i++)
            {
                var e = await Assert.ThrowsAsync<TunnelResetException>(() => mux.OpenAsync("x", CancellationToken.None));
                Assert.Equal(TunnelResetCode.Timeout, e.Code);
            }
            sent.AddRange(((NullTransport)mux.Transport).Opens);
        }
        Assert.Equal([1u, 2u, 3u, TunnelMux.HighIdBit | 1, TunnelMux.HighIdBit | 2, TunnelMux.HighIdBit | 3], sent);
    }

    private sealed class NullTransport : ITunnelTransport
    {
        public List<uint> Opens { get; } = [];

        public bool SendControl(UplinkMessage message)
        {
            if (message is TunnelOpen open) Opens.Add(open.StreamId);
            return true;
        }

        public ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class MuxPair : IDisposable
    {
        private readonly Channel<TunnelStream> _accepted = Channel.CreateUnbounded<TunnelStream>();

        public MuxPair(TunnelOptions? options = null, TimeProvider? time = null)
        {
            Relay = new TunnelMux(new Wire(this, toDevice: true), options, time);
            Device = new TunnelMux(new Wire(this, toDevice: false), options, time);
        }

        public TunnelMux Relay { get; }
        public TunnelMux Device { get; }
        public List<UplinkMessage> ToRelay { get; } = [];

        public async Task<TunnelStream> AcceptedAsync() => await _accepted.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));

        private readonly Lock _lock = new();

        private void Deliver(UplinkMessage message, bool toDevice)
        {
            var decoded = UplinkCodec.ParseOne(UplinkCodec.Encode(message), UplinkLimits.Default);
            // One receiving loop per side, as on a real uplink.
            lock (_lock)
            {
                if (toDevice)
                {
                    if (decoded is TunnelOpen) Device.Accepting = Wrap(Device.Accepting);
                    Device.OnMessage(decoded);
                }
                else
                {
                    ToRelay.Add(decoded);
                    Relay.OnMessage(decoded);
                }
            }
        }

        private Action<TunnelStream>? Wrap(Action<TunnelStream>? inner) => inner is null ? null : s =>
        {
            inner(s);
            _accepted.Writer.TryWrite(s);
            Device.Accepting = inner;
        };

        public void Dispose()
        {
            Relay.Dispose();
            Device.Dispose();
        }

        private sealed class Wire(MuxPair pair, bool toDevice) : ITunnelTransport
        {
            public bool SendControl(UplinkMessage message)
            {
                pair.Deliver(message, toDevice);
                return true;
            }

            public ValueTask SendDataAsync(UplinkMessage message, CancellationToken cancellationToken)
            {
                pair.Deliver(message, toDevice);
                return ValueTask.CompletedTask;
            }
        }
    }

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1;

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    }
}
