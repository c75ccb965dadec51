using Pinhole.Transport.Media;

namespace Pinhole.Transport.Nal;

/// <summary>Reassembles one fragmented NAL unit (H.264 FU-A, H.265 FU) with a size limit.</summary>
internal sealed class FragmentBuffer
{
    private byte[] _buffer = new byte[64 * 1024];
    private int _length = -1;

    public bool InProgress => _length >= 0;

    public void Start(ReadOnlySpan<byte> header, ReadOnlySpan<byte> data)
    {
        _length = 0;
        Append(header);
        Append(data);
    }

    public void Start(byte header, ReadOnlySpan<byte> data) => Start([header], data);

    public void Append(ReadOnlySpan<byte> data)
    {
        if (_length + data.Length > NalUnitAssembler.MaxAccessUnitBytes)
        {
            Reset();
            throw new MediaFormatException($"fragmented NAL unit larger than {NalUnitAssembler.MaxAccessUnitBytes} bytes");
        }
        if (_length + data.Length > _buffer.Length)
            Array.Resize(ref _buffer, Math.Min(NalUnitAssembler.MaxAccessUnitBytes, Math.Max(_buffer.Length * 2, _length + data.Length)));
        data.CopyTo(_buffer.AsSpan(_length));
        _length += data.Length;
    }

    /// <summary>Ends the fragment; the bytes stay valid until the next <see cref="Start(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/> (the assembler copies them at once).</summary>
    public ReadOnlySpan<byte> Finish()
    {
        var nal = _buffer.AsSpan(0, _length);
        _length = -1;
        return nal;
    }

    public void Reset() => _length = -1;

    public static IReadOnlyList<ReadOnlyMemory<byte>> ParseBase64List(string? value, string name)
    {
        var list = new List<ReadOnlyMemory<byte>>();
        if (string.IsNullOrWhiteSpace(value)) return list;
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try { list.Add(Convert.FromBase64String(part)); }
            catch (FormatException e) { throw new MediaFormatException($"SDP {name} is not base64", e); }
        }
        return list;
    }
}
