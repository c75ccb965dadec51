using System.Buffers.Binary;
using System.Text;

namespace Pinhole.Transport.Tests.Fmp4;

/// <summary>One parsed ISO BMFF box: where it is and its children (for the container types the muxer writes).</summary>
internal sealed record Box(string Type, int Offset, int Size, int HeaderSize, byte[] File, List<Box> Children)
{
    public ReadOnlySpan<byte> Payload => File.AsSpan(Offset + HeaderSize, Size - HeaderSize);
    public byte Version => Payload[0];
    public uint Flags => (uint)(Payload[1] << 16 | Payload[2] << 8 | Payload[3]);
    public Box Child(string type) => Children.Single(c => c.Type == type);
    public IEnumerable<Box> All(string type) => Children.Where(c => c.Type == type);
    public Box Find(string path) => path.Split('/').Aggregate(this, (b, t) => b.Child(t));
    public uint U32(int at) => BinaryPrimitives.ReadUInt32BigEndian(Payload[at..]);
    public ulong U64(int at) => BinaryPrimitives.ReadUInt64BigEndian(Payload[at..]);
    public ushort U16(int at) => BinaryPrimitives.ReadUInt16BigEndian(Payload[at..]);
}

/// <summary>
/// Walks ISO/IEC 14496-12 boxes and checks that every size is exact: each box fits its parent, and a
/// container's children fill it with nothing left over. Throws with the path of the first bad box.
/// </summary>
internal static class BoxWalker
{
    // Boxes whose payload is only child boxes, and those with a fixed prefix before their children.
    private static readonly HashSet<string> Containers = ["moov", "trak", "mdia", "minf", "dinf", "stbl", "mvex", "moof", "traf"];
    private static readonly Dictionary<string, int> PrefixedContainers = new()
    {
        ["stsd"] = 8, // FullBox header + entry_count
        ["dref"] = 8,
        ["avc1"] = 78, // VisualSampleEntry fields
        ["hvc1"] = 78,
        ["mp4a"] = 28, // AudioSampleEntry fields
    };

    public static List<Box> Walk(byte[] file) => Walk(file, 0, file.Length, "");

    private static List<Box> Walk(byte[] file, int start, int end, string path)
    {
        var boxes = new List<Box>();
        var p = start;
        while (p < end)
        {
            if (end - p < 8) throw new InvalidDataException($"{path}: {end - p} stray bytes at {p}");
            var size = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(p));
            var type = Encoding.ASCII.GetString(file, p + 4, 4);
            if (size < 8 || p + size > end) throw new InvalidDataException($"{path}/{type}: size {size} at {p} overruns its parent (ends at {end})");
            var box = new Box(type, p, (int)size, 8, file, []);
            var here = $"{path}/{type}";
            if (Containers.Contains(type)) box.Children.AddRange(Walk(file, p + 8, p + (int)size, here));
            else if (PrefixedContainers.TryGetValue(type, out var prefix))
            {
                if (size < 8 + prefix) throw new InvalidDataException($"{here}: too small for its fields");
                box.Children.AddRange(Walk(file, p + 8 + prefix, p + (int)size, here));
            }
            boxes.Add(box);
            p += (int)size;
        }
        return boxes;
    }
}
