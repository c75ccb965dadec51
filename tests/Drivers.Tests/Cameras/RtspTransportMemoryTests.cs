using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Drivers.Cameras;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Drivers.Tests.Cameras;

/// <summary>
/// An <c>auto</c> source remembers the transport that delivered media, across runs (the pipeline's
/// restarts), against a scripted UDP-only camera: 461 to TCP, G.711 over UDP to the client's port.
/// </summary>
public partial class RtspTransportMemoryTests
{
    [Fact]
    public async Task Auto_source_tries_the_transport_that_worked_first_on_the_next_run_and_forgets_it_when_it_stops_working()
    {
        await using var camera = new UdpOnlyCamera();
        var source = Assert.IsType<RtspCameraSource>(CameraSource.Create($"rtsp://127.0.0.1:{camera.Port}/cam", CameraTransport.Auto, NullLoggerFactory.Instance));

        await PlayAsync(source);
        Assert.Equal(["TCP", "UDP"], camera.TakeSetups()); // one refused SETUP, then UDP
        Assert.Equal(RtspLowerTransport.Udp, source.Transport);

        await PlayAsync(source);
        Assert.Equal(["UDP"], camera.TakeSetups()); // remembered: straight to UDP
        Assert.Equal(RtspLowerTransport.Udp, source.Transport);

        // UDP stops arriving (a firewall now drops it) and TCP is still refused: the run fails, and
        // the source no longer insists on UDP; the next run starts from TCP again.
        camera.SendMedia = false;
        var e = await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new Sink(), CancellationToken.None));
        Assert.Contains("SETUP failed: 461", e.Message, StringComparison.Ordinal);
        Assert.Contains("(after UDP: received no RTP over UDP within 4 s of PLAY)", e.Message, StringComparison.Ordinal);
        Assert.Equal(["UDP", "TCP"], camera.TakeSetups());
        Assert.Null(source.Transport);
    }

    [Fact]
    public async Task Forced_tcp_source_does_not_fall_back_and_remembers_nothing()
    {
        await using var camera = new UdpOnlyCamera();
        var source = Assert.IsType<RtspCameraSource>(CameraSource.Create($"rtsp://127.0.0.1:{camera.Port}/cam", CameraTransport.Tcp, NullLoggerFactory.Instance));
        var e = await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new Sink(), CancellationToken.None));
        Assert.Contains("SETUP failed: 461", e.Message, StringComparison.Ordinal);
        Assert.Equal(["TCP"], camera.TakeSetups());
        Assert.Null(source.Transport);
    }

    private static async Task PlayAsync(RtspCameraSource source)
    {
        var sink = new Sink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var run = source.RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.Enough.Task, run, Task.Delay(TimeSpan.FromSeconds(10)));
        await cts.CancelAsync();
        await run;
        Assert.True(sink.Enough.Task.IsCompleted, "no media within 10 s");
    }

    private sealed class Sink : IMediaSink
    {
        private int _units;
        public readonly TaskCompletionSource Enough = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { }
        public void OnAccessUnit(in AccessUnit unit)
        {
            if (Interlocked.Increment(ref _units) >= 10) Enough.TrySetResult();
        }
    }

    [GeneratedRegex(@"client_port=(\d+)-(\d+)")]
    private static partial Regex ClientPort();

    /// <summary>Answers like VLC's RTSP output: 461 to RTP/AVP/TCP, UDP with server_port otherwise; PCMA every 10 ms after PLAY.</summary>
    private sealed class UdpOnlyCamera : IAsyncDisposable
    {
        private const string Sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=0\r\n";
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly UdpClient _udp = new(new IPEndPoint(IPAddress.Loopback, 0));
        private readonly CancellationTokenSource _stop = new();
        private readonly List<string> _setups = [];
        private readonly Task _accept;

        public UdpOnlyCamera()
        {
            _listener.Start();
            _accept = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public volatile bool SendMedia = true;

        public List<string> TakeSetups()
        {
            lock (_setups)
            {
                var taken = _setups.ToList();
                _setups.Clear();
                return taken;
            }
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = ServeAsync(client);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { }
        }

        private async Task ServeAsync(TcpClient client)
        {
            using var owned = client;
            using var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
            var stream = client.GetStream();
            IPEndPoint? target = null;
            try
            {
                while (true)
                {
                    var lines = new List<string>();
                    for (var line = await reader.ReadLineAsync(_stop.Token); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync(_stop.Token))
                        lines.Add(line);
                    if (lines.Count == 0) return;
                    var method = lines[0].Split(' ')[0];
                    var cseq = lines.First(l => l.StartsWith("CSeq:", StringComparison.OrdinalIgnoreCase))[5..].Trim();
                    var transport = lines.FirstOrDefault(l => l.StartsWith("Transport:", StringComparison.OrdinalIgnoreCase)) ?? "";
                    var head = $"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n";
                    var body = "";
                    switch (method)
                    {
                        case "OPTIONS":
                            head += "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n";
                            break;
                        case "DESCRIBE":
                            head += $"Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1:{Port}/cam/\r\n";
                            body = Sdp;
                            break;
                        case "SETUP" when transport.Contains("/TCP", StringComparison.Ordinal):
                            lock (_setups) _setups.Add("TCP");
                            head = $"RTSP/1.0 461 Unsupported transport\r\nCSeq: {cseq}\r\n";
                            break;
                        case "SETUP":
                            lock (_setups) _setups.Add("UDP");
                            var m = ClientPort().Match(transport);
                            target = new IPEndPoint(IPAddress.Loopback, int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
                            var serverPort = ((IPEndPoint)_udp.Client.LocalEndPoint!).Port;
                            head += $"Session: s1;timeout=60\r\nTransport: RTP/AVP;unicast;client_port={m.Groups[1].Value}-{m.Groups[2].Value};server_port={serverPort}-{serverPort + 1}\r\n";
                            break;
                        case "PLAY":
                            head += "Session: s1\r\n";
                            if (SendMedia && target is not null) _ = SendPcmaAsync(target, stream);
                            break;
                        default:
                            head += "Session: s1\r\n";
                            break;
                    }
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(head + $"Content-Length: {body.Length}\r\n\r\n" + body), _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException) { }
        }

        private async Task SendPcmaAsync(IPEndPoint target, NetworkStream connection)
        {
            // RFC 3550 §5.1 header (V=2, PT=8), 160 samples of A-law silence a packet.
            var packet = new byte[12 + 160];
            packet[0] = 0x80;
            packet[1] = 8;
            packet[8] = 0x12;
            packet.AsSpan(12).Fill(0xd5);
            try
            {
                for (ushort seq = 0; connection.Socket.Connected; seq++)
                {
                    packet[2] = (byte)(seq >> 8);
                    packet[3] = (byte)seq;
                    var ts = seq * 160u;
                    packet[4] = (byte)(ts >> 24); packet[5] = (byte)(ts >> 16); packet[6] = (byte)(ts >> 8); packet[7] = (byte)ts;
                    await _udp.SendAsync(packet, target, _stop.Token);
                    await Task.Delay(10, _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accept;
            _udp.Dispose();
            _stop.Dispose();
        }
    }
}
