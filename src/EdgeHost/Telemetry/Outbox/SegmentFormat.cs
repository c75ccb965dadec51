using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Pinhole.EdgeHost.Telemetry.Outbox;

// The on-disk format of an outbox segment: a sequence of records, each
//
//   u32 length      bytes after this 8-byte header
//   u32 crc         CRC-32C over the length field and the body
//   body:  u64 index, u8 type, payload
//
// all little-endian. Type 1 is a reading (u64 seq, i64 UTC ticks, f64 value, u16+UTF-8 sensor,
// u16+UTF-8 unit); type 2 is a checkpoint written first in every segment (u32 count, then count
// times u16+UTF-8 sensor, u64 last seq) so sequence numbers survive the deletion of old segments.
// A torn or corrupt record (kill -9 or power loss mid-write) fails the length or CRC check;
// reading a segment stops there, and the outbox never appends after it (it starts a new segment).
internal static class SegmentFormat
{
    public const int HeaderSize = 8;
    public const int MaxBodySize = 1024 * 1024;
    public const byte TypeReading = 1;
    public const byte TypeCheckpoint = 2;
    public const string Extension = ".seg";

    public static string FileName(long firstIndex) => firstIndex.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + Extension;

    public static void WriteReading(IBufferWriter<byte> output, OutboxRecord r)
    {
        var sensor = Encoding.UTF8.GetBytes(r.Sensor);
        var unit = Encoding.UTF8.GetBytes(r.Unit);
        var bodyLength = 8 + 1 + 8 + 8 + 8 + 2 + sensor.Length + 2 + unit.Length;
        var span = output.GetSpan(HeaderSize + bodyLength)[..(HeaderSize + bodyLength)];
        var body = span[HeaderSize..];
        BinaryPrimitives.WriteInt64LittleEndian(body, r.Index);
        body[8] = TypeReading;
        BinaryPrimitives.WriteInt64LittleEndian(body[9..], r.Sequence);
        BinaryPrimitives.WriteInt64LittleEndian(body[17..], r.Timestamp.UtcTicks);
        BinaryPrimitives.WriteDoubleLittleEndian(body[25..], r.Value);
        var at = 33;
        at += WriteString(body[at..], sensor);
        WriteString(body[at..], unit);
        Seal(span, bodyLength);
        output.Advance(span.Length);
    }

    public static void WriteCheckpoint(IBufferWriter<byte> output, long index, IReadOnlyDictionary<string, long> lastSequences)
    {
        var entries = lastSequences.Select(kv => (Name: Encoding.UTF8.GetBytes(kv.Key), Seq: kv.Value)).ToList();
        var bodyLength = 8 + 1 + 4 + entries.Sum(e => 2 + e.Name.Length + 8);
        var span = output.GetSpan(HeaderSize + bodyLength)[..(HeaderSize + bodyLength)];
        var body = span[HeaderSize..];
        BinaryPrimitives.WriteInt64LittleEndian(body, index);
        body[8] = TypeCheckpoint;
        BinaryPrimitives.WriteInt32LittleEndian(body[9..], entries.Count);
        var at = 13;
        foreach (var (name, seq) in entries)
        {
            at += WriteString(body[at..], name);
            BinaryPrimitives.WriteInt64LittleEndian(body[at..], seq);
            at += 8;
        }
        Seal(span, bodyLength);
        output.Advance(span.Length);
    }

    /// <summary>One decoded record; <see cref="Reading"/> is set for type 1, <see cref="Checkpoint"/> for type 2.</summary>
    public readonly record struct Decoded(long Index, int Size, OutboxRecord? Reading, Dictionary<string, long>? Checkpoint);

    /// <summary>Decodes the record at the start of <paramref name="data"/>; false when it is torn, corrupt or absent.</summary>
    public static bool TryRead(ReadOnlySpan<byte> data, out Decoded record)
    {
        record = default;
        if (data.Length < HeaderSize) return false;
        var length = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (length < 9 || length > MaxBodySize || length > data.Length - HeaderSize) return false;
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        var body = data.Slice(HeaderSize, (int)length);
        if (Crc(data[..4], body) != crc) return false;
        try
        {
            var index = BinaryPrimitives.ReadInt64LittleEndian(body);
            var size = HeaderSize + (int)length;
            switch (body[8])
            {
                case TypeReading:
                {
                    var seq = BinaryPrimitives.ReadInt64LittleEndian(body[9..]);
                    var ticks = BinaryPrimitives.ReadInt64LittleEndian(body[17..]);
                    var value = BinaryPrimitives.ReadDoubleLittleEndian(body[25..]);
                    var at = 33;
                    var sensor = ReadString(body, ref at);
                    var unit = ReadString(body, ref at);
                    record = new Decoded(index, size, new OutboxRecord(index, sensor, seq, value, unit, new DateTimeOffset(ticks, TimeSpan.Zero)), null);
                    return true;
                }
                case TypeCheckpoint:
                {
                    var count = BinaryPrimitives.ReadInt32LittleEndian(body[9..]);
                    var at = 13;
                    var map = new Dictionary<string, long>(StringComparer.Ordinal);
                    for (var i = 0; i < count; i++)
                    {
                        var name = ReadString(body, ref at);
                        map[name] = BinaryPrimitives.ReadInt64LittleEndian(body[at..]);
                        at += 8;
                    }
                    record = new Decoded(index, size, null, map);
                    return true;
                }
                default:
                    return false;
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            return false; // lengths inside a record that passed its CRC but do not fit: written by something else
        }
    }

    private static void Seal(Span<byte> record, int bodyLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)bodyLength);
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], Crc(record[..4], record[HeaderSize..]));
    }

    private static int WriteString(Span<byte> to, byte[] utf8)
    {
        if (utf8.Length > ushort.MaxValue) throw new ArgumentException("string too long for the outbox");
        BinaryPrimitives.WriteUInt16LittleEndian(to, (ushort)utf8.Length);
        utf8.CopyTo(to[2..]);
        return 2 + utf8.Length;
    }

    private static string ReadString(ReadOnlySpan<byte> body, ref int at)
    {
        var length = BinaryPrimitives.ReadUInt16LittleEndian(body[at..]);
        var s = Encoding.UTF8.GetString(body.Slice(at + 2, length));
        at += 2 + length;
        return s;
    }

    // CRC-32C (Castagnoli), hardware-accelerated by BitOperations where the CPU has it (ARMv8 CRC, SSE4.2).
    internal static uint Crc(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var crc = Update(0xFFFFFFFFu, first);
        crc = Update(crc, second);
        return ~crc;

        static uint Update(uint crc, ReadOnlySpan<byte> data)
        {
            while (data.Length >= 8)
            {
                crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }
            foreach (var b in data)
                crc = BitOperations.Crc32C(crc, b);
            return crc;
        }
    }
}
