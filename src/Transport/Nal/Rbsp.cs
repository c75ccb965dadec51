namespace Pinhole.Transport.Nal;

/// <summary>A NAL unit's payload as raw bytes (RBSP): emulation prevention bytes (00 00 03, H.264 §7.4.1, H.265 §7.4.2) removed.</summary>
internal static class Rbsp
{
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
}
