using System.Buffers;
using System.IO.Pipelines;
using Pinhole.Transport.Mqtt.Channels;
using Pinhole.Transport.Mqtt.Formatter;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt.Adapter;

/// <summary>
/// Framing between a byte channel and the formatter (MQTTnet's adapter layer). Received bytes go into a
/// pipe, whole packets come out; the formatter rejects a packet above the maximum size from its fixed
/// header, so at most one maximum-size packet plus one read is ever buffered. Outgoing packets are
/// encoded into one buffer and written with a single channel write (one WebSocket frame).
/// One task receives and one task sends; the two may run at the same time.
/// </summary>
internal sealed class MqttChannelAdapter : IAsyncDisposable
{
    private const int ReadSize = 16 * 1024;
    private readonly Pipe _receive = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: ReadSize, useSynchronizationContext: false));
    private readonly ArrayBufferWriter<byte> _send = new(ReadSize);
    private readonly TimeProvider _timeProvider;
    private long _lastReadTimestamp;

    public MqttChannelAdapter(IMqttChannel channel, MqttPacketFormatter formatter, TimeProvider timeProvider)
    {
        Channel = channel;
        Formatter = formatter;
        _timeProvider = timeProvider;
        _lastReadTimestamp = timeProvider.GetTimestamp();
    }

    public IMqttChannel Channel { get; }

    public MqttPacketFormatter Formatter { get; }

    /// <summary>When bytes last arrived (any bytes, so a slow large packet still counts as life).</summary>
    public long LastReadTimestamp => Interlocked.Read(ref _lastReadTimestamp);

    public int PendingSendBytes => _send.WrittenCount;

    /// <summary>Receives the next whole packet, or null when the peer closed the connection cleanly between packets.</summary>
    /// <exception cref="MqttProtocolException">The peer sent a malformed packet, or closed in the middle of one.</exception>
    public async ValueTask<MqttPacket?> ReceivePacketAsync(CancellationToken cancellationToken)
    {
        var reader = _receive.Reader;
        var writer = _receive.Writer;
        while (true)
        {
            var buffered = false;
            if (reader.TryRead(out var result))
            {
                if (TryParse(result.Buffer, out var packet, out var consumed))
                {
                    reader.AdvanceTo(consumed);
                    return packet;
                }

                buffered = !result.Buffer.IsEmpty;
                reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }

            var memory = writer.GetMemory(ReadSize);
            var read = await Channel.ReadAsync(memory, cancellationToken);
            if (read == 0)
            {
                if (buffered)
                    throw new MqttProtocolException("the connection closed in the middle of a packet");
                return null;
            }

            Interlocked.Exchange(ref _lastReadTimestamp, _timeProvider.GetTimestamp());
            writer.Advance(read);
            await writer.FlushAsync(cancellationToken);
        }
    }

    private bool TryParse(ReadOnlySequence<byte> buffer, out MqttPacket? packet, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        var parsed = Formatter.TryParse(ref reader, out packet);
        consumed = reader.Position;
        return parsed;
    }

    /// <summary>Encodes a packet into the send buffer; <see cref="FlushAsync"/> writes the buffer out.</summary>
    public int Enqueue(MqttPacket packet) => Formatter.Encode(packet, _send);

    /// <summary>Writes every enqueued packet in one channel write.</summary>
    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_send.WrittenCount == 0)
            return;
        await Channel.WriteAsync(_send.WrittenMemory, cancellationToken);
        _send.ResetWrittenCount();
    }

    public async Task SendPacketAsync(MqttPacket packet, CancellationToken cancellationToken)
    {
        Enqueue(packet);
        await FlushAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await Channel.DisposeAsync();
        await _receive.Reader.CompleteAsync();
        await _receive.Writer.CompleteAsync();
    }
}
