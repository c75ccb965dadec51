using System.Buffers;

namespace Pinhole.Transport.Mqtt.Formatter;

/// <summary>
/// The Variable Byte Integer of MQTT (MQTT 5.0 section 1.5.5, MQTT 3.1.1 section 2.2.3 for the
/// remaining length): 7 bits per byte, least significant group first, at most 4 bytes, so at most
/// 268,435,455. The minimum number of bytes must be used [MQTT-1.5.5-1].
/// </summary>
public static class MqttVariableByteInteger
{
    /// <summary>The largest value that fits in 4 bytes.</summary>
    public const uint MaxValue = 268_435_455;

    /// <summary>
    /// Reads a variable byte integer. Returns false, consuming nothing, when the bytes end before the
    /// last byte of the integer. Throws <see cref="MqttProtocolException"/> when it uses more than 4
    /// bytes or more bytes than needed.
    /// </summary>
    /// <param name="reader">The reader, advanced past the integer on success.</param>
    /// <param name="value">The decoded value.</param>
    public static bool TryRead(ref SequenceReader<byte> reader, out uint value)
    {
        value = 0;
        var probe = reader;
        var shift = 0;
        for (var i = 0; i < 4; i++)
        {
            if (!probe.TryRead(out var b))
                return false;
            if (b == 0 && i > 0)
                throw new MqttProtocolException("variable byte integer is not minimally encoded (trailing zero byte)");
            value |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                reader = probe;
                return true;
            }

            shift += 7;
        }

        throw new MqttProtocolException("variable byte integer uses more than 4 bytes");
    }

    /// <summary>How many bytes <paramref name="value"/> takes (1..4).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is above <see cref="MaxValue"/>.</exception>
    public static int GetSize(uint value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaxValue);
        return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;
    }

    /// <summary>Writes <paramref name="value"/> into <paramref name="destination"/> and returns the bytes written.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is above <see cref="MaxValue"/>.</exception>
    public static int Write(uint value, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaxValue);
        var i = 0;
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            if (value > 0)
                b |= 0x80;
            destination[i++] = b;
        }
        while (value > 0);
        return i;
    }
}
