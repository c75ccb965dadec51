using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt.Formatter;

/// <summary>Writes the data types of MQTT 5.0 section 1.5 into a growable scratch buffer that is reused between packets.</summary>
internal sealed class MqttBodyWriter
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ArrayBufferWriter<byte> _buffer = new(256);

    public int Length => _buffer.WrittenCount;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.WrittenSpan;

    public void Reset() => _buffer.ResetWrittenCount();

    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.GetSpan(2), value);
        _buffer.Advance(2);
    }

    public void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.GetSpan(4), value);
        _buffer.Advance(4);
    }

    public void WriteVariableByteInteger(uint value) =>
        _buffer.Advance(MqttVariableByteInteger.Write(value, _buffer.GetSpan(4)));

    public void WriteString(string value)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
            throw new ArgumentException("MQTT strings must not contain U+0000", nameof(value));
        int length;
        try
        {
            length = StrictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException("MQTT strings must be well-formed UTF-16 (no lone surrogates)", nameof(value), e);
        }

        if (length > ushort.MaxValue)
            throw new ArgumentException($"MQTT strings are at most 65535 bytes of UTF-8, this one is {length}", nameof(value));
        WriteUInt16((ushort)length);
        _buffer.Advance(StrictUtf8.GetBytes(value, _buffer.GetSpan(length)));
    }

    public void WriteBinary(ReadOnlySpan<byte> value)
    {
        if (value.Length > ushort.MaxValue)
            throw new ArgumentException($"MQTT binary data is at most 65535 bytes, this is {value.Length}", nameof(value));
        WriteUInt16((ushort)value.Length);
        WriteRaw(value);
    }

    public void WriteRaw(ReadOnlySpan<byte> value) => _buffer.Write(value);

    // Properties (MQTT 5.0 section 2.2.2.2): identifier as a variable byte integer, then the value.
    public void Property(MqttPropertyId id, byte? value)
    {
        if (value is null) return;
        WriteByte((byte)id);
        WriteByte(value.Value);
    }

    public void Property(MqttPropertyId id, ushort? value)
    {
        if (value is null) return;
        WriteByte((byte)id);
        WriteUInt16(value.Value);
    }

    public void Property(MqttPropertyId id, uint? value)
    {
        if (value is null) return;
        WriteByte((byte)id);
        WriteUInt32(value.Value);
    }

    public void VariableByteIntegerProperty(MqttPropertyId id, uint? value)
    {
        if (value is null) return;
        WriteByte((byte)id);
        WriteVariableByteInteger(value.Value);
    }

    public void Property(MqttPropertyId id, string? value)
    {
        if (value is null) return;
        WriteByte((byte)id);
        WriteString(value);
    }

    public void Property(MqttPropertyId id, byte[]? value)
    {
        if (value is null) return;
        WriteByte((byte)id);
        WriteBinary(value);
    }

    public void UserProperties(List<MqttUserProperty>? properties)
    {
        if (properties is null) return;
        foreach (var p in properties)
        {
            WriteByte((byte)MqttPropertyId.UserProperty);
            WriteString(p.Name);
            WriteString(p.Value);
        }
    }
}
