using Pinhole.Transport.Media;

namespace Pinhole.Transport.Aac;

/// <summary>The leading fields of an MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).</summary>
/// <param name="AudioObjectType">audioObjectType (2 = AAC LC).</param>
/// <param name="SampleRate">Sampling frequency in Hz.</param>
/// <param name="Channels">channelConfiguration (0 = defined in the bitstream).</param>
/// <param name="FrameLength">Samples per frame: 1024, or 960 when frameLengthFlag is set.</param>
internal sealed record AudioSpecificConfig(int AudioObjectType, int SampleRate, int Channels, int FrameLength)
{
    private static readonly int[] SampleRates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

    /// <summary>Parses the config bytes (e.g. from the SDP <c>config=</c> hex, RFC 3640 §4.1).</summary>
    public static AudioSpecificConfig Parse(ReadOnlySpan<byte> config)
    {
        if (config.Length < 2) throw new MediaFormatException("AudioSpecificConfig shorter than 2 bytes");
        var r = new BitReader(config);
        var aot = (int)r.ReadBits(5);
        if (aot == 31) aot = 32 + (int)r.ReadBits(6);
        var index = (int)r.ReadBits(4);
        int rate;
        if (index == 15) rate = (int)r.ReadBits(24);
        else if (index < SampleRates.Length) rate = SampleRates[index];
        else throw new MediaFormatException($"AudioSpecificConfig samplingFrequencyIndex {index} is reserved");
        if (rate <= 0) throw new MediaFormatException("AudioSpecificConfig sample rate is zero");
        var channels = (int)r.ReadBits(4);
        var frameLength = 1024;
        // GASpecificConfig (§4.4.1) follows for the AAC object types; its first bit is frameLengthFlag.
        if (aot is 1 or 2 or 3 or 4 or 6 or 7 && r.BitsLeft > 0 && r.ReadFlag()) frameLength = 960;
        return new AudioSpecificConfig(aot, rate, channels, frameLength);
    }
}
