using System.Net.Sockets;
using System.Text;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// A raw RTSP client that DESCRIBEs, SETUPs every track interleaved over TCP, sends PLAY and then
/// never reads again: the viewer that stops reading. Its receive buffer is tiny so the relay's
/// socket fills up within a second.
/// </summary>
internal sealed class StalledRtspViewer : IDisposable
{
    private readonly TcpClient _client;
    private int _cseq;

    private StalledRtspViewer(TcpClient client) => _client = client;

    private NetworkStream _stream => _client.GetStream();

    public int PlayStatus { get; private set; }

    /// <summary>Bytes the kernel holds for this client that it has not read.</summary>
    public int Unread => _client.Client.Available;

    public static async Task<StalledRtspViewer> PlayAsync(string host, int port, string path, string user, string password)
    {
        var client = new TcpClient { ReceiveBufferSize = 4096 };
        var viewer = new StalledRtspViewer(client);
        try
        {
            await client.ConnectAsync(host, port).WaitAsync(TimeSpan.FromSeconds(10));
            var url = $"rtsp://{host}:{port}{path}";
            var auth = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
            var (status, headers, body) = await viewer.RequestAsync("DESCRIBE", url, $"Accept: application/sdp\r\nAuthorization: {auth}\r\n");
            if (status != 200) throw new InvalidOperationException($"DESCRIBE answered {status}");
            var baseUrl = headers.TryGetValue("content-base", out var cb) ? cb.TrimEnd('/') : url;
            var controls = body.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("a=control:", StringComparison.Ordinal))
                .Select(l => l["a=control:".Length..]).Where(c => c != "*").ToList();
            string? session = null;
            var channel = 0;
            foreach (var control in controls)
            {
                var trackUrl = control.StartsWith("rtsp://", StringComparison.Ordinal) ? control : $"{baseUrl}/{control}";
                var extra = $"Transport: RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}\r\nAuthorization: {auth}\r\n" + (session is null ? "" : $"Session: {session}\r\n");
                var setup = await viewer.RequestAsync("SETUP", trackUrl, extra);
                if (setup.Status != 200) throw new InvalidOperationException($"SETUP {trackUrl} answered {setup.Status}");
                session ??= setup.Headers["session"].Split(';')[0].Trim();
                channel += 2;
            }
            var play = await viewer.RequestAsync("PLAY", url, $"Session: {session}\r\nRange: npt=0.000-\r\nAuthorization: {auth}\r\n");
            viewer.PlayStatus = play.Status;
            return viewer;
        }
        catch
        {
            viewer.Dispose();
            throw;
        }
    }

    private Task<(int Status, Dictionary<string, string> Headers, string Body)> RequestAsync(string method, string url, string extraHeaders) =>
        RawRtspExchange.RequestAsync(_stream, ++_cseq, "pinhole-stalled-viewer", method, url, extraHeaders);

    /// <summary>True while the relay has not closed the connection (checked without reading).</summary>
    public bool IsConnected => !(_client.Client.Poll(0, SelectMode.SelectRead) && _client.Client.Available == 0);

    public void Dispose() => _client.Dispose();
}
