using System.Buffers.Binary;
using System.Text;

namespace Pinhole.Transport.Fmp4;

/// <summary>
/// Writes ISO BMFF boxes (ISO/IEC 14496-12 §4.2) into a growable buffer: big-endian fields, and box
/// sizes patched in when the box is closed, so nested boxes need no size pre-computation.
/// </summary>
internal sealed class BoxWriter
{
    private byte[] _buffer;
    private int _length;

    public BoxWriter(int capacity = 1024) => _buffer = new byte[capacity];

    public int Length => _length;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    /// <summary>The written bytes; the buffer itself when it is exactly full (the writer must not be used afterwards).</summary>
    public byte[] ToArray() => _length == _buffer.Length ? _buffer : _buffer.AsSpan(0, _length).ToArray();

    /// <summary>Opens a box; returns its start, to be passed to <see cref="End"/>.</summary>
    public int Begin(string type)
    {
        var start = _length;
        U32(0); // size, patched by End
        FourCc(type);
        return start;
    }

    /// <summary>Opens a FullBox (§4.2.2): a box with a version byte and 24 bits of flags.</summary>
    public int BeginFull(string type, byte version, uint flags)
    {
        var start = Begin(type);
        U32(((uint)version << 24) | (flags & 0xFFFFFF));
        return start;
    }

    public void End(int start) => BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(start), (uint)(_length - start));

    /// <summary>Overwrites a 32-bit field written earlier (e.g. trun data_offset once the moof size is known).</summary>
    public void PatchU32(int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(offset), value);

    public void U8(byte value) => Reserve(1)[0] = value;

    public void U16(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Reserve(2), value);

    public void U24(uint value)
    {
        var s = Reserve(3);
        s[0] = (byte)(value >> 16);
        s[1] = (byte)(value >> 8);
        s[2] = (byte)value;
    }

    public void U32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Reserve(4), value);

    public void I32(int value) => BinaryPrimitives.WriteInt32BigEndian(Reserve(4), value);

    public void U64(ulong value) => BinaryPrimitives.WriteUInt64BigEndian(Reserve(8), value);

    public void Zeros(int count) => Reserve(count).Clear();

    public void Bytes(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Reserve(bytes.Length));

    public void FourCc(string type)
    {
        var s = Reserve(4);
        if (Encoding.ASCII.GetBytes(type, s) != 4) throw new ArgumentException("a box type is four ASCII characters", nameof(type));
    }

    /// <summary>The unity transformation matrix of mvhd/tkhd (§8.2.2.3), in 16.16 and 2.30 fixed point.</summary>
    public void UnityMatrix()
    {
        U32(0x00010000); U32(0); U32(0);
        U32(0); U32(0x00010000); U32(0);
        U32(0); U32(0); U32(0x40000000);
    }

    private Span<byte> Reserve(int count)
    {
        if (_length + count > _buffer.Length)
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count));
        var span = _buffer.AsSpan(_length, count);
        _length += count;
        return span;
    }
}
