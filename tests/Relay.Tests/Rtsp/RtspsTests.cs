using System.Net;
using System.Net.Sockets;
using System.Text;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Rtsp;
using Pinhole.Streaming.Rtsp;
using Pinhole.Streaming;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>RTSP over TLS (<c>rtsps://</c>) on relay.json <c>rtsps</c> with the relay's <c>tls</c> certificate, played by ffmpeg and GStreamer.</summary>
public sealed class RtspsTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-rtsps-").FullName;
    private readonly TestCertificateAuthority _ca = TestCertificateAuthority.Create();

    public void Dispose()
    {
        _ca.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Ffprobe_verifies_the_relay_certificate_and_plays_over_rtsps_and_a_plaintext_client_on_the_tls_port_is_closed()
    {
        var server = _ca.IssueServerCertificate("127.0.0.1");
        var config = RelayConfigLoader.Load($$"""
            {
              "http": "http://127.0.0.1:0", "rtsp": "127.0.0.1:0", "rtsps": "127.0.0.1:0", "dataDir": "{{_dir}}",
              "tls": { "certificate": "{{server.CertificatePath}}", "key": "{{server.KeyPath}}" },
              "viewers": [ { "user": "bob", "password": "hunter2" } ]
            }
            """, _dir, out var problems);
        Assert.True(config is not null, string.Join("\n", problems));
        await using var relay = await RelayApp.StartAsync(config);
        var rtsp = relay.Services.GetRequiredService<RtspServer>();
        var port = rtsp.TlsLocalEndPoint!.Port;
        await using var feeder = new StreamFeeder(relay.Services.GetRequiredService<MediaStreamRegistry>().GetOrAdd("gw1", "cam"), TestMedia.H264).Start();

        // -tls_verify 1 with the test CA: the certificate chain and the 127.0.0.1 SAN are checked.
        var args = $"-v error -tls_verify 1 -ca_file \"{_ca.CertificatePath}\" -timeout 10000000 -count_frames -read_intervals %+1 "
            + $"-show_entries stream=codec_name,nb_read_frames -of csv=p=0 \"rtsps://bob:hunter2@127.0.0.1:{port}/gw1/cam\"";
        var (code, stdout, stderr) = await Task.Run(() => TestMedia.Run("ffprobe", args, 60_000));
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.StartsWith("h264,", stdout.Trim(), StringComparison.Ordinal);
        Assert.True(int.Parse(stdout.Trim().Split(',')[1], System.Globalization.CultureInfo.InvariantCulture) >= 10);

        // A client that does not speak TLS on the TLS port is closed, quietly.
        using var plain = new TcpClient();
        await plain.ConnectAsync(IPAddress.Loopback, port);
        await plain.GetStream().WriteAsync(Encoding.ASCII.GetBytes("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var buffer = new byte[1024];
        int n;
        try
        {
            while ((n = await plain.GetStream().ReadAsync(buffer, cts.Token)) > 0) { }
        }
        catch (IOException)
        {
            // reset: closed all the same
        }
    }

    [RequiresToolsFact("gst-launch-1.0", "ffmpeg")]
    public async Task Rtspsrc_plays_over_rtsps()
    {
        var server = _ca.IssueServerCertificate("127.0.0.1");
        await using var h = await RtspHarness.StartAsync(configure: o => o with
        {
            AllowBasicOnPlaintext = false,
            TlsEndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            TlsCertificate = server.Certificate,
        }, output: output);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var port = h.Server.TlsLocalEndPoint!.Port;
        // gst-launch cannot hand rtspsrc a CA database; the certificate check is ffprobe's part above.
        var pipeline = $"rtspsrc location=rtsps://127.0.0.1:{port}/gw1/cam user-id={RtspHarness.User} user-pw={RtspHarness.Password} "
            + "tls-validation-flags=0 protocols=tcp latency=100 ! rtph264depay ! h264parse ! avdec_h264 ! identity eos-after=30 ! fakesink sync=false";
        var (code, stdout, stderr) = await Task.Run(() => TestMedia.Run("gst-launch-1.0", "-e " + pipeline, 30_000));
        output.WriteLine(stdout + stderr);
        Assert.Contains("Got EOS from element \"pipeline0\"", stdout);
        Assert.True(h.Metric("pinhole_rtsp_frames_sent_total") >= 30);
        Assert.Equal(0, h.Metric("pinhole_rtsp_auth_failures_total"));
    }
}
