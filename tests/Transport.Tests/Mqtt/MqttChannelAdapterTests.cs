using Pinhole.Transport.Mqtt;
using Pinhole.Transport.Mqtt.Adapter;
using Pinhole.Transport.Mqtt.Channels;
using Pinhole.Transport.Mqtt.Formatter;
using Pinhole.Transport.Mqtt.Packets;
using static Pinhole.Transport.Tests.Mqtt.MqttTestPackets;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>Framing is independent of how the bytes arrive (WebSocket frames, TCP segments).</summary>
public class MqttChannelAdapterTests
{
    private static MqttChannelAdapter Adapter(IEnumerable<byte[]> reads, uint maximumPacketSize = 1024 * 1024) =>
        new(new ScriptedChannel(reads), new MqttPacketFormatter(MqttProtocolVersion.V500, maximumPacketSize), TimeProvider.System);

    [Fact]
    public async Task Packets_spanning_reads_and_several_packets_in_one_read_come_out_whole_and_in_order()
    {
        var packets = All(MqttProtocolVersion.V500).Select(p => p.Packet).ToList();
        var bytes = packets.SelectMany(p => Encode(MqttProtocolVersion.V500, p)).ToArray();
        // Reads of 1, 2, 3, ... bytes, then one big read with everything left.
        var reads = new List<byte[]>();
        var at = 0;
        for (var size = 1; at + size < bytes.Length / 2; size++)
        {
            reads.Add(bytes[at..(at + size)]);
            at += size;
        }

        reads.Add(bytes[at..]);
        await using var adapter = Adapter(reads);
        var received = new List<MqttPacket>();
        while (await adapter.ReceivePacketAsync(CancellationToken.None) is { } packet)
            received.Add(packet);

        Assert.Equal(packets.Select(Describe), received.Select(Describe));
    }

    [Fact]
    public async Task Connection_closing_in_the_middle_of_a_packet_is_a_protocol_error_not_a_clean_end()
    {
        var bytes = Encode(MqttProtocolVersion.V500, new MqttPublishPacket { Topic = "t", Payload = new byte[100] });
        await using var adapter = Adapter([bytes[..50]]);
        await Assert.ThrowsAsync<MqttProtocolException>(async () => await adapter.ReceivePacketAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Oversized_announcement_fails_before_the_body_is_read()
    {
        var channel = new ScriptedChannel([Hex("30 FF FF FF 7F"), new byte[1024]]);
        await using var adapter = new MqttChannelAdapter(channel, new MqttPacketFormatter(MqttProtocolVersion.V500, 4096), TimeProvider.System);
        var e = await Assert.ThrowsAsync<MqttProtocolException>(async () => await adapter.ReceivePacketAsync(CancellationToken.None));
        Assert.Equal(MqttReasonCode.PacketTooLarge, e.ReasonCode);
        Assert.Equal(1, channel.Reads); // the 1 KiB that followed was never asked for
    }

    [Fact]
    public async Task Queued_packets_leave_in_one_write()
    {
        var channel = new ScriptedChannel([]);
        await using var adapter = new MqttChannelAdapter(channel, new MqttPacketFormatter(MqttProtocolVersion.V311), TimeProvider.System);
        adapter.Enqueue(MqttPingReqPacket.Instance);
        adapter.Enqueue(new MqttPubAckPacket { PacketIdentifier = 7 });
        await adapter.FlushAsync(CancellationToken.None);
        Assert.Equal(["C000400200 07".Replace(" ", "", StringComparison.Ordinal)], channel.Writes.Select(Convert.ToHexString));
    }

    private sealed class ScriptedChannel(IEnumerable<byte[]> reads) : IMqttChannel
    {
        private readonly Queue<byte[]> _reads = new(reads);

        public int Reads { get; private set; }

        public List<byte[]> Writes { get; } = [];

        public string Endpoint => "scripted";

        public Task ConnectAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            Reads++;
            if (!_reads.TryDequeue(out var next))
                return ValueTask.FromResult(0);
            Assert.True(next.Length <= buffer.Length, "test chunk larger than the adapter's read buffer");
            next.CopyTo(buffer);
            return ValueTask.FromResult(next.Length);
        }

        public ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
        {
            Writes.Add(buffer.ToArray());
            return ValueTask.CompletedTask;
        }

        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Abort()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
