using System.Buffers;
using System.Globalization;
using System.Text;

namespace Pinhole.Transport.Rtsp;

/// <summary>Serializes RTSP messages (RFC 2326 §6, §7). Sets Content-Length from the body.</summary>
public static class RtspWriter
{
    /// <summary>Writes <paramref name="message"/> to <paramref name="writer"/>.</summary>
    public static void Write(RtspMessage message, IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(writer);
        var sb = new StringBuilder(256);
        switch (message)
        {
            case RtspRequest req:
                sb.Append(req.Method).Append(' ').Append(req.Uri).Append(' ').Append(RtspMessage.Version).Append("\r\n");
                break;
            case RtspResponse res:
                sb.Append(RtspMessage.Version).Append(' ').Append(res.StatusCode.ToString(CultureInfo.InvariantCulture))
                  .Append(' ').Append(res.ReasonPhrase).Append("\r\n");
                break;
            default:
                throw new ArgumentException("unknown RTSP message type", nameof(message));
        }
        foreach (var h in message.Headers)
        {
            if (string.Equals(h.Key, "Content-Length", StringComparison.OrdinalIgnoreCase)) continue;
            sb.Append(h.Key).Append(": ").Append(h.Value).Append("\r\n");
        }
        if (message.Body.Length > 0)
            sb.Append("Content-Length: ").Append(message.Body.Length.ToString(CultureInfo.InvariantCulture)).Append("\r\n");
        sb.Append("\r\n");
        var text = sb.ToString();
        var count = Encoding.UTF8.GetByteCount(text);
        var span = writer.GetSpan(count + message.Body.Length);
        Encoding.UTF8.GetBytes(text, span);
        message.Body.Span.CopyTo(span[count..]);
        writer.Advance(count + message.Body.Length);
    }

    /// <summary>Serializes <paramref name="message"/> to a new array.</summary>
    internal static byte[] ToBytes(RtspMessage message)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        Write(message, buffer);
        return buffer.WrittenSpan.ToArray();
    }
}
