using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Pinhole.Transport.Media;
using Pinhole.Transport.Tests.Support;
using Pinhole.Transport.Uplink;
using Pinhole.Transport.WebSockets;

namespace Pinhole.Transport.Tests.Uplink;

/// <summary>
/// The device's WebSocket client against a scripted server, for what a real relay never does (bad
/// handshakes, masked or text frames, pings, fragments, oversized messages) and for the non-blocking
/// send path. The whole uplink suite in Integration.Tests runs it against ASP.NET Core's server.
/// </summary>
public sealed class UplinkClientConnectionTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly RawWebSocketServer _server = new();
    private readonly CancellationTokenSource _cts = new(TimeSpan.FromSeconds(60));

    public void Dispose()
    {
        _server.Dispose();
        _cts.Dispose();
    }

    private static UplinkConnectOptions Options => new()
    {
        Headers = [new("Pinhole-Device", "gw1"), new("Authorization", "Bearer secret")],
        SystemProxy = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    private async Task<(UplinkClientConnection Client, string Key)> ConnectAsync(byte[]? after = null)
    {
        var connecting = UplinkClientConnection.ConnectAsync(_server.Url, Options, _cts.Token);
        var key = await _server.AcceptAsync(_cts.Token);
        await _server.SwitchAsync(key, after);
        return (await connecting.WaitAsync(Timeout), key);
    }

    private static Task<UplinkMessage?> ReceiveAsync(UplinkClientConnection client) =>
        Task.Factory.StartNew(client.Receive, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    [Fact]
    public async Task Upgrade_request_carries_the_headers_key_version_and_subprotocol()
    {
        var (client, key) = await ConnectAsync();
        using (client)
        {
            var lines = _server.Request.Split("\r\n");
            Assert.Equal("GET /uplink HTTP/1.1", lines[0]);
            Assert.Contains($"Host: 127.0.0.1:{_server.Url.Port}", lines);
            Assert.Contains("Upgrade: websocket", lines);
            Assert.Contains("Connection: Upgrade", lines);
            Assert.Contains("Sec-WebSocket-Version: 13", lines);
            Assert.Contains("Sec-WebSocket-Protocol: pinhole-uplink.v1", lines);
            Assert.Contains("Pinhole-Device: gw1", lines);
            Assert.Contains("Authorization: Bearer secret", lines);
            Assert.Equal(16, Convert.FromBase64String(key).Length);
            Assert.Equal("pinhole-uplink.v1", client.SubProtocol);
            Assert.True(client.IsOpen);
        }
    }

    // Delay must wait where the edge can drop it by GOP, not in a send buffer that autotunes to
    // megabytes (seconds on a slow link): the kernel keeps at most this many bytes unsent.
    [Fact]
    public async Task The_kernel_keeps_at_most_a_small_unsent_backlog_which_follows_the_link_rate()
    {
        if (!OperatingSystem.IsLinux()) return; // TCP_NOTSENT_LOWAT is Linux's
        var (client, _) = await ConnectAsync();
        using (client)
        {
            Assert.Equal(16 * 1024, client.SendLowWatermark);
            Assert.True(client.SetSendLowWatermark(250_000));
            Assert.Equal(250_000, client.SendLowWatermark);
            Assert.True(client.SetSendLowWatermark(10)); // clamped: a fast link is never starved between wake-ups
            Assert.Equal(16 * 1024, client.SendLowWatermark);
            Assert.True(client.SetSendLowWatermark(int.MaxValue));
            Assert.Equal(4 * 1024 * 1024, client.SendLowWatermark);
        }
    }

    [Fact]
    public async Task A_refused_upgrade_reports_the_status_and_the_relay_reason()
    {
        var connecting = UplinkClientConnection.ConnectAsync(_server.Url, Options, _cts.Token);
        await _server.AcceptAsync(_cts.Token);
        await _server.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 401 Unauthorized\r\nPinhole-Reject: bad-token\r\nContent-Length: 0\r\n\r\n"));

        var e = await Assert.ThrowsAsync<UplinkHandshakeException>(() => connecting.WaitAsync(Timeout));
        Assert.Equal(401, e.StatusCode);
        Assert.Equal("bad-token", e.Headers["pinhole-reject"]);
        Assert.Equal("HTTP 401 Unauthorized", e.Message);
    }

    [Theory]
    [InlineData("wrong-accept", "Sec-WebSocket-Accept")]
    [InlineData("no-subprotocol", "subprotocol")]
    [InlineData("not-http", "did not answer HTTP")]
    [InlineData("closed", "without an answer")]
    public async Task A_bad_upgrade_answer_fails_with_what_was_wrong(string answer, string reason)
    {
        var connecting = UplinkClientConnection.ConnectAsync(_server.Url, Options, _cts.Token);
        var key = await _server.AcceptAsync(_cts.Token);
        switch (answer)
        {
            case "wrong-accept":
                await _server.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawWebSocketServer.Accept(key + "x")}\r\nSec-WebSocket-Protocol: pinhole-uplink.v1\r\n\r\n"));
                break;
            case "no-subprotocol":
                await _server.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawWebSocketServer.Accept(key)}\r\n\r\n"));
                break;
            case "not-http":
                await _server.SendAsync(Encoding.ASCII.GetBytes("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
                break;
            case "closed":
                _server.Client.Shutdown(SocketShutdown.Both);
                break;
        }

        var e = await Assert.ThrowsAnyAsync<IOException>(() => connecting.WaitAsync(Timeout));
        Assert.IsNotType<UplinkHandshakeException>(e);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_relay_that_never_answers_times_out_within_the_connect_timeout()
    {
        var options = Options with { ConnectTimeout = TimeSpan.FromSeconds(1) };
        var clock = Stopwatch.StartNew();
        var connecting = UplinkClientConnection.ConnectAsync(_server.Url, options, _cts.Token);
        await _server.AcceptAsync(_cts.Token); // and says nothing

        var e = await Assert.ThrowsAsync<TimeoutException>(() => connecting.WaitAsync(Timeout));
        Assert.Contains("1 s", e.Message, StringComparison.Ordinal);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Header_values_with_line_breaks_are_refused_before_anything_is_sent()
    {
        var options = Options with { Headers = [new("Authorization", "Bearer x\r\nX-Injected: 1")] };
        await Assert.ThrowsAsync<ArgumentException>(() => UplinkClientConnection.ConnectAsync(_server.Url, options, _cts.Token));
    }

    [Fact]
    public async Task A_frame_right_behind_the_101_a_ping_and_a_fragmented_message_are_all_read()
    {
        var ack = UplinkCodec.Encode(new Ack(7, 8, 9, 10));
        var pong = UplinkCodec.Encode(new Pong(42));
        // The pong message arrives in the same TCP write as the 101.
        var (client, _) = await ConnectAsync(RawWebSocketServer.Frame(0x2, pong));
        using (client)
        {
            Assert.Equal(new Pong(42), await ReceiveAsync(client).WaitAsync(Timeout));

            // A ping between the fragments of an ack: answered at once with the same payload (§5.5.2).
            var receiving = ReceiveAsync(client);
            await _server.SendAsync([
                .. RawWebSocketServer.Frame(0x2, ack.AsSpan(0, 3), fin: false),
                .. RawWebSocketServer.Frame(0x9, "are you there"u8),
                .. RawWebSocketServer.Frame(0x0, ack.AsSpan(3, 10), fin: false),
                .. RawWebSocketServer.Frame(0x0, ack.AsSpan(13), fin: true),
            ]);
            Assert.Equal(new Ack(7, 8, 9, 10), await receiving.WaitAsync(Timeout));
            var reply = await _server.ReadFrameAsync(_cts.Token);
            Assert.Equal((true, 0xA), (reply.Fin, reply.Opcode));
            Assert.Equal("are you there", Encoding.ASCII.GetString(reply.Payload));
        }
    }

    [Fact]
    public async Task A_close_from_the_relay_is_answered_with_its_status_and_ends_receiving()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            var receiving = ReceiveAsync(client);
            await _server.SendAsync(RawWebSocketServer.Frame(0x8, [0x03, 0xE8, .. "bye"u8]));

            Assert.Null(await receiving.WaitAsync(Timeout));
            var reply = await _server.ReadFrameAsync(_cts.Token);
            Assert.Equal(0x8, reply.Opcode);
            Assert.Equal(new byte[] { 0x03, 0xE8 }, reply.Payload);
            Assert.False(client.IsOpen);
            Assert.Throws<IOException>(() => client.TrySend(new Ping(1)));
        }
    }

    public static TheoryData<string, byte[], string> BadFrames => new()
    {
        { "masked", [0x82, 0x86, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0], "masked a frame" },
        { "text", RawWebSocketServer.Frame(0x1, "{\"hello\":1}"u8), "text WebSocket message" },
        { "continuation first", RawWebSocketServer.Frame(0x0, new byte[6]), "continuation frame outside a message" },
        { "binary inside binary", [.. RawWebSocketServer.Frame(0x2, new byte[2], fin: false), .. RawWebSocketServer.Frame(0x2, new byte[4])], "new message began" },
        { "reserved bits", [0xF2, 0x00], "reserved bits" },
        // An uplink header announcing a 100 MB body: refused from its 6 bytes, nothing else buffered.
        { "oversized", RawWebSocketServer.Frame(0x2, [0x01, 0x05, 0x05, 0xF5, 0xE1, 0x00], fin: false), "exceeds the limit" },
        { "longer than announced", RawWebSocketServer.Frame(0x2, [0x00, 0x07, 0, 0, 0, 8, .. new byte[9]]), "longer than the 14 bytes" },
        { "shorter than announced", RawWebSocketServer.Frame(0x2, [0x00, 0x07, 0, 0, 0, 8, .. new byte[7]]), "its header announced 14" },
    };

    [Theory]
    [MemberData(nameof(BadFrames))]
    public async Task Bad_frames_from_the_relay_fail_receiving_with_a_reason(string what, byte[] bytes, string reason)
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            var receiving = ReceiveAsync(client);
            await _server.SendAsync(bytes);
            var e = await Assert.ThrowsAnyAsync<Exception>(() => receiving.WaitAsync(Timeout));
            Assert.True(e is IOException or UplinkProtocolException, $"{what}: {e.GetType().Name}");
            Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Every_frame_is_masked_with_its_own_key_and_unmasks_to_the_message()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            var keys = new HashSet<uint>();
            for (var i = 1; i <= 2100; i++)
            {
                var payload = new byte[i % 300];
                new Random(i).NextBytes(payload);
                Assert.True(client.TrySendFrame((ulong)i, 3, 1000, new AccessUnit(0, i, i, i % 30 == 1, payload)));
                var frame = await _server.ReadFrameAsync(_cts.Token);
                Assert.Equal((true, 0x2), (frame.Fin, frame.Opcode));
                keys.Add(BinaryPrimitives.ReadUInt32BigEndian(frame.Key));
                var message = Assert.IsType<MediaFrame>(UplinkCodec.ParseOne(frame.Payload, UplinkLimits.Default));
                Assert.Equal((ulong)i, message.Sequence);
                Assert.Equal(payload, message.Unit.Data.ToArray());
            }
            // Past the 1,024 keys of one random block: fresh keys, not a repeating cycle.
            Assert.True(keys.Count > 2090, $"{keys.Count} distinct mask keys in 2100 frames");
            Assert.Equal(UplinkProtocol.FrameHeaderSize * 2100L + Enumerable.Range(1, 2100).Sum(i => i % 300), client.MediaBytesSent);
        }
    }

    [Fact]
    public async Task Sends_never_block_when_the_relay_stops_reading_and_flush_delivers_everything_in_order()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            _server.Client.ReceiveBufferSize = 64 * 1024;
            var payload = new byte[64 * 1024];
            var sent = 0UL;
            var clock = Stopwatch.StartNew();
            // Until the kernel refuses: the relay reads nothing meanwhile.
            while (client.TrySendFrame(++sent, 1, 0, new AccessUnit(0, 0, 0, true, payload)))
                Assert.True(sent < 10_000, "the socket never filled up");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"sending until full took {clock.Elapsed}");
            Assert.True(client.HasPendingBytes);
            // Bytes sent after the refusal queue behind the pending ones: 8 MB more, more than the
            // kernel's buffers can take while nobody reads, however they autotune.
            for (var extra = 0; extra < 128; extra++)
                Assert.False(client.TrySendFrame(++sent, 1, 0, new AccessUnit(0, 0, 0, true, payload)));
            Assert.False(client.TrySend(new Ping(99)));

            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(600));
            Assert.Throws<OperationCanceledException>(() => client.FlushPending(cts.Token));

            var flushing = Task.Factory.StartNew(() => client.FlushPending(_cts.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            for (var i = 1UL; i <= sent; i++)
            {
                var frame = await _server.ReadFrameAsync(_cts.Token);
                Assert.Equal(i, Assert.IsType<MediaFrame>(UplinkCodec.ParseOne(frame.Payload, UplinkLimits.Default)).Sequence);
            }
            var last = await _server.ReadFrameAsync(_cts.Token);
            Assert.Equal(new Ping(99), UplinkCodec.ParseOne(last.Payload, UplinkLimits.Default));
            await flushing.WaitAsync(Timeout);
            Assert.False(client.HasPendingBytes);
        }
    }

    [Fact]
    public async Task Abort_ends_a_blocked_receive_at_once()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            var receiving = ReceiveAsync(client);
            await Task.Delay(200);
            Assert.False(receiving.IsCompleted);
            client.Abort();
            await Assert.ThrowsAnyAsync<IOException>(() => receiving.WaitAsync(TimeSpan.FromSeconds(2)));
            Assert.False(client.IsOpen);
        }
    }

    [Fact]
    public async Task Close_sends_the_goodbye_then_a_close_frame()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            client.Close(new Goodbye(UplinkReason.Shutdown, "device shutting down"), 1000, "shutdown", TimeSpan.FromSeconds(1));

            var goodbye = await _server.ReadFrameAsync(_cts.Token);
            Assert.Equal(new Goodbye(UplinkReason.Shutdown, "device shutting down"), UplinkCodec.ParseOne(goodbye.Payload, UplinkLimits.Default));
            var close = await _server.ReadFrameAsync(_cts.Token);
            Assert.Equal(0x8, close.Opcode);
            Assert.Equal(1000, BinaryPrimitives.ReadUInt16BigEndian(close.Payload));
            Assert.Equal("shutdown", Encoding.UTF8.GetString(close.Payload.AsSpan(2)));
        }
    }
    [Fact]
    public async Task While_the_relay_is_silent_the_waiting_check_runs_every_interval_and_may_abort()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            var calls = new List<long>();
            client.WhileWaiting(TimeSpan.FromMilliseconds(100), () =>
            {
                lock (calls) calls.Add(Stopwatch.GetTimestamp());
                if (calls.Count == 5) client.Abort();
            });
            var clock = Stopwatch.StartNew();
            var receiving = ReceiveAsync(client);
            await Assert.ThrowsAnyAsync<IOException>(() => receiving.WaitAsync(Timeout));
            // The first check runs as receiving starts to wait, then one per interval of silence.
            Assert.Equal(5, calls.Count);
            Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(390), TimeSpan.FromSeconds(3));
            for (var i = 1; i < calls.Count; i++)
                Assert.True(Stopwatch.GetElapsedTime(calls[i - 1], calls[i]) >= TimeSpan.FromMilliseconds(95), $"check {i} came early");
        }
    }

    [Fact]
    public async Task A_relay_trickling_bytes_does_not_hold_off_the_waiting_check()
    {
        var (client, _) = await ConnectAsync();
        using (client)
        {
            var calls = 0;
            client.WhileWaiting(TimeSpan.FromMilliseconds(100), () => Interlocked.Increment(ref calls));
            var receiving = ReceiveAsync(client);
            // One byte of an ack every 30 ms: each wait ends before the interval would, yet the check
            // must still come about every 100 ms.
            var frame = RawWebSocketServer.Frame(0x2, UplinkCodec.Encode(new Ack(1, 2, 3, 4)));
            var clock = Stopwatch.StartNew();
            foreach (var b in frame)
            {
                await _server.SendAsync([b]);
                await Task.Delay(30);
            }
            Assert.Equal(new Ack(1, 2, 3, 4), await receiving.WaitAsync(Timeout));
            var expected = clock.Elapsed.TotalMilliseconds / 100;
            Assert.InRange(Volatile.Read(ref calls), (int)(expected * 0.5), (int)expected + 2);
        }
    }
}
