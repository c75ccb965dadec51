using System.Text;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>One RTSP request and its response on a raw stream, for test viewers that must control
/// every byte they read (media that follows the response is left unread).</summary>
internal static class RawRtspExchange
{
    public static async Task<(int Status, Dictionary<string, string> Headers, string Body)> RequestAsync(Stream stream, int cseq, string userAgent, string method, string url, string extraHeaders)
    {
        var request = $"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: {userAgent}\r\n{extraHeaders}\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        // Read byte by byte up to the end of the headers: nothing after the response is consumed.
        var head = new StringBuilder();
        var one = new byte[1];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one, timeout.Token) == 0) throw new IOException($"{method}: connection closed");
            head.Append((char)one[0]);
        }
        var lines = head.ToString().Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
            .GroupBy(p => p[0].Trim().ToLowerInvariant()).ToDictionary(g => g.Key, g => g.First()[1].Trim());
        var body = "";
        if (headers.TryGetValue("content-length", out var lengthText) && int.TryParse(lengthText, out var length) && length > 0)
        {
            var buffer = new byte[length];
            await stream.ReadExactlyAsync(buffer, timeout.Token);
            body = Encoding.UTF8.GetString(buffer);
        }
        return (status, headers, body);
    }
}
