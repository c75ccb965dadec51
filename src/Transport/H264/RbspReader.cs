using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.H264;

/// <summary>
/// Reads bits from a NAL unit's RBSP: emulation prevention bytes (00 00 03, H.264 §7.4.1,
/// H.265 §7.4.2) are removed first, then u(n), ue(v) and se(v) (H.264 §9.1) are read MSB first.
/// Reading past the end throws <see cref="RtspProtocolException"/>.
/// </summary>
internal ref struct RbspReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _bit;

    public RbspReader(ReadOnlySpan<byte> rbsp)
    {
        _data = rbsp;
        _bit = 0;
    }

    /// <summary>Copies <paramref name="nal"/> without emulation prevention bytes.</summary>
    public static byte[] Unescape(ReadOnlySpan<byte> nal)
    {
        var output = new byte[nal.Length];
        var n = 0;
        var zeros = 0;
        foreach (var b in nal)
        {
            if (zeros >= 2 && b == 3)
            {
                zeros = 0;
                continue;
            }
            zeros = b == 0 ? zeros + 1 : 0;
            output[n++] = b;
        }
        return output.AsSpan(0, n).ToArray();
    }

    public int BitsLeft => _data.Length * 8 - _bit;

    public uint ReadBits(int count)
    {
        if (count > 32) throw new ArgumentOutOfRangeException(nameof(count));
        if (count > BitsLeft) throw new RtspProtocolException("parameter set ends early");
        uint v = 0;
        for (var i = 0; i < count; i++)
        {
            v = (v << 1) | (uint)((_data[_bit >> 3] >> (7 - (_bit & 7))) & 1);
            _bit++;
        }
        return v;
    }

    public bool ReadFlag() => ReadBits(1) != 0;

    public void Skip(int count)
    {
        if (count > BitsLeft) throw new RtspProtocolException("parameter set ends early");
        _bit += count;
    }

    /// <summary>ue(v): Exp-Golomb, at most 31 leading zeros (larger values are not valid in any field read here).</summary>
    public uint ReadUe()
    {
        var zeros = 0;
        while (!ReadFlag())
            if (++zeros > 31) throw new RtspProtocolException("Exp-Golomb code longer than 32 bits");
        if (zeros == 0) return 0;
        return (uint)((1UL << zeros) - 1 + ReadBits(zeros));
    }

    /// <summary>ue(v) with an upper bound check; a larger value is malformed.</summary>
    public int ReadUe(int max, string field)
    {
        var v = ReadUe();
        if (v > max) throw new RtspProtocolException($"{field} = {v} is out of range");
        return (int)v;
    }

    /// <summary>se(v): signed Exp-Golomb (H.264 §9.1.1).</summary>
    public int ReadSe()
    {
        var k = ReadUe();
        return (k & 1) != 0 ? (int)((k + 1) / 2) : -(int)(k / 2);
    }
}
