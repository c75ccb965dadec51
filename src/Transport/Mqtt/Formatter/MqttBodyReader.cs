using System.Buffers;
using System.Text;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt.Formatter;

/// <summary>
/// Reads the data types of MQTT 5.0 section 1.5 from one packet's body, whose length the fixed header
/// already bounded. Reading past the end is a malformed packet, never a "need more bytes".
/// </summary>
internal ref struct MqttBodyReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private SequenceReader<byte> _reader;
    private readonly string _packetName;

    public MqttBodyReader(ReadOnlySequence<byte> body, string packetName)
    {
        _reader = new SequenceReader<byte>(body);
        _packetName = packetName;
    }

    public readonly bool End => _reader.End;

    public readonly long Remaining => _reader.Remaining;

    public byte ReadByte()
    {
        if (!_reader.TryRead(out var b))
            throw Truncated();
        return b;
    }

    public ushort ReadUInt16()
    {
        if (!_reader.TryReadBigEndian(out short v))
            throw Truncated();
        return (ushort)v;
    }

    public uint ReadUInt32()
    {
        if (!_reader.TryReadBigEndian(out int v))
            throw Truncated();
        return (uint)v;
    }

    public uint ReadVariableByteInteger()
    {
        if (!MqttVariableByteInteger.TryRead(ref _reader, out var v))
            throw Truncated();
        return v;
    }

    /// <summary>UTF-8 Encoded String (section 1.5.4): well-formed UTF-8, no U+0000 [MQTT-1.5.4-1], [MQTT-1.5.4-2].</summary>
    public string ReadString()
    {
        var length = ReadUInt16();
        if (length == 0)
            return "";
        if (_reader.Remaining < length)
            throw Truncated();
        string value;
        try
        {
            var span = _reader.UnreadSpan;
            if (span.Length >= length)
            {
                value = StrictUtf8.GetString(span[..length]);
            }
            else
            {
                var copy = ArrayPool<byte>.Shared.Rent(length);
                _reader.TryCopyTo(copy.AsSpan(0, length));
                value = StrictUtf8.GetString(copy, 0, length);
                ArrayPool<byte>.Shared.Return(copy);
            }
        }
        catch (DecoderFallbackException e)
        {
            throw new MqttProtocolException($"{_packetName}: string is not well-formed UTF-8", e);
        }

        if (value.Contains('\0', StringComparison.Ordinal))
            throw new MqttProtocolException($"{_packetName}: string contains U+0000");
        _reader.Advance(length);
        return value;
    }

    /// <summary>Binary Data (section 1.5.6): two-byte length then bytes.</summary>
    public byte[] ReadBinary()
    {
        var length = ReadUInt16();
        return ReadBytes(length);
    }

    public byte[] ReadRemaining() => ReadBytes((int)_reader.Remaining);

    private byte[] ReadBytes(int length)
    {
        if (_reader.Remaining < length)
            throw Truncated();
        if (length == 0)
            return [];
        var bytes = new byte[length];
        _reader.TryCopyTo(bytes);
        _reader.Advance(length);
        return bytes;
    }

    public MqttUserProperty ReadUserProperty() => new(ReadString(), ReadString());

    /// <summary>Returns a reader over the next <paramref name="length"/> bytes and skips them here.</summary>
    public MqttBodyReader Slice(uint length)
    {
        if (_reader.Remaining < length)
            throw Truncated();
        var slice = new MqttBodyReader(_reader.UnreadSequence.Slice(0, length), _packetName);
        _reader.Advance(length);
        return slice;
    }

    public readonly void EnsureEnd()
    {
        if (!_reader.End)
            throw new MqttProtocolException($"{_packetName}: {_reader.Remaining} unexpected bytes at the end of the packet");
    }

    private readonly MqttProtocolException Truncated() =>
        new($"{_packetName}: packet ends in the middle of a field (remaining length too small)");
}
