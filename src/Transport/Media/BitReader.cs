using Pinhole.Transport.Media;

namespace Pinhole.Transport.Media;

/// <summary>
/// Reads a bitstream MSB first: u(n), and the Exp-Golomb codes ue(v) and se(v) of H.264 §9.1
/// (parameter sets, once <c>Nal.Rbsp.Unescape</c> has removed emulation prevention bytes;
/// AAC's AudioSpecificConfig and AU headers use only u(n)).
/// Reading past the end throws <see cref="MediaFormatException"/>.
/// </summary>
internal ref struct BitReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _bit;

    public BitReader(ReadOnlySpan<byte> rbsp)
    {
        _data = rbsp;
        _bit = 0;
    }

    public int BitsLeft => _data.Length * 8 - _bit;

    public uint ReadBits(int count)
    {
        if (count > 32) throw new ArgumentOutOfRangeException(nameof(count));
        if (count > BitsLeft) throw new MediaFormatException("parameter set ends early");
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
        if (count > BitsLeft) throw new MediaFormatException("parameter set ends early");
        _bit += count;
    }

    /// <summary>ue(v): Exp-Golomb, at most 31 leading zeros (larger values are not valid in any field read here).</summary>
    public uint ReadUe()
    {
        var zeros = 0;
        while (!ReadFlag())
            if (++zeros > 31) throw new MediaFormatException("Exp-Golomb code longer than 32 bits");
        if (zeros == 0) return 0;
        return (uint)((1UL << zeros) - 1 + ReadBits(zeros));
    }

    /// <summary>ue(v) with an upper bound check; a larger value is malformed.</summary>
    public int ReadUe(int max, string field)
    {
        var v = ReadUe();
        if (v > max) throw new MediaFormatException($"{field} = {v} is out of range");
        return (int)v;
    }

    /// <summary>se(v): signed Exp-Golomb (H.264 §9.1.1).</summary>
    public int ReadSe()
    {
        var k = ReadUe();
        return (k & 1) != 0 ? (int)((k + 1) / 2) : -(int)(k / 2);
    }
}
