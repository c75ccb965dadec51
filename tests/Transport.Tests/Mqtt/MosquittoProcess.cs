using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Pinhole.Transport.Tests.Mqtt;

/// <summary>
/// A real Mosquitto on free loopback ports: plain TCP, WebSocket, TLS and WebSocket over TLS (a private CA made
/// per broker), persistence in a temporary folder, and an ACL that allows <c>t/#</c> and nothing else.
/// It can be stopped and started again on the same ports (persistence), and frozen with SIGSTOP (a dead
/// broker that still holds its sockets). Dispose kills it and deletes its folder.
/// </summary>
/// <remarks>
/// Local to the MQTT tests until the harness branch's shared broker helper lands.
/// </remarks>
public sealed class MosquittoProcess : IAsyncDisposable
{
    private readonly string _dir;
    private readonly Queue<string> _log = new();
    private Process? _process;

    private MosquittoProcess(string dir)
    {
        _dir = dir;
        TcpPort = FreePort();
        WebSocketPort = FreePort();
        TlsPort = FreePort();
        SecureWebSocketPort = FreePort();
    }

    public int TcpPort { get; }

    public int WebSocketPort { get; }

    public int TlsPort { get; }

    public int SecureWebSocketPort { get; }

    /// <summary>The private CA that signed the broker's certificate (for <c>WithTrustedCa</c>).</summary>
    public string CaFile => Path.Combine(_dir, "ca.crt");

    public string WebSocketUrl => $"ws://127.0.0.1:{WebSocketPort}/mqtt";

    /// <summary>Uses "localhost" so the certificate's name matches.</summary>
    public string SecureWebSocketUrl => $"wss://localhost:{SecureWebSocketPort}/mqtt";

    public int Pid => _process?.Id ?? 0;

    /// <summary>The broker's last log lines, for diagnosing a failed test.</summary>
    public string Log
    {
        get
        {
            lock (_log)
                return string.Join('\n', _log);
        }
    }

    public static bool IsInstalled => File.Exists("/usr/sbin/mosquitto");

    public static async Task<MosquittoProcess> StartAsync()
    {
        // Free ports are found by binding port 0 and letting go, so a parallel test can take one first:
        // then Mosquitto exits at once, and we start over with new ports.
        for (var attempt = 1; ; attempt++)
        {
            var dir = Path.Combine(Path.GetTempPath(), "pinhole-mosquitto-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(dir);
            // Started as root, Mosquitto drops to the "mosquitto" user, which must be able to write its persistence file here.
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);
            var broker = new MosquittoProcess(dir);
            try
            {
                broker.WriteCertificates();
                broker.WriteConfig();
                await broker.StartAgainAsync();
                return broker;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await broker.DisposeAsync();
            }
            catch
            {
                await broker.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Starts (again) on the same ports and folder, so persisted sessions come back.</summary>
    public async Task StartAgainAsync()
    {
        var psi = new ProcessStartInfo("/usr/sbin/mosquitto") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(Path.Combine(_dir, "mosquitto.conf"));
        _process = Process.Start(psi) ?? throw new InvalidOperationException("mosquitto did not start");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        foreach (var port in new[] { TcpPort, WebSocketPort, TlsPort, SecureWebSocketPort })
        {
            while (true)
            {
                if (_process.HasExited)
                    throw new InvalidOperationException($"mosquitto exited with {_process.ExitCode}: {Log}");
                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port);
                    break;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline)
                {
                    await Task.Delay(20);
                }
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_log)
        {
            _log.Enqueue(line);
            if (_log.Count > 2000)
                _log.Dequeue();
        }
    }

    /// <summary>Stops the broker the way a service stop does (SIGTERM: it saves its persistence file).</summary>
    public async Task StopAsync()
    {
        if (_process is null || _process.HasExited)
            return;
        Signal("TERM");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _process.WaitForExitAsync(timeout.Token);
    }

    /// <summary>Freezes the broker (SIGSTOP): its sockets stay open but nothing answers.</summary>
    public void Freeze() => Signal("STOP");

    /// <summary>Lets a frozen broker run again (SIGCONT).</summary>
    public void Thaw() => Signal("CONT");

    private void Signal(string name)
    {
        using var kill = Process.Start("kill", ["-" + name, _process!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void WriteConfig()
    {
        File.WriteAllText(Path.Combine(_dir, "acl"), "topic readwrite t/#\n");
        var certs = $"certfile {Path.Combine(_dir, "server.crt")}\nkeyfile {Path.Combine(_dir, "server.key")}\n";
        File.WriteAllText(Path.Combine(_dir, "mosquitto.conf"), $"""
            per_listener_settings false
            allow_anonymous true
            acl_file {Path.Combine(_dir, "acl")}
            persistence true
            persistence_location {_dir}/
            log_dest stdout
            log_type error
            log_type warning
            log_type notice
            log_type information
            max_queued_messages 100000
            # Mosquitto 2.0.11 stops sending queued QoS 2 messages to a 3.1.1 subscriber once 20 (the default
            # max_inflight_messages) were in flight, even after every PUBCOMP (mosquitto_sub stalls the same
            # way). 0 = no limit; 5.0 clients are still limited by the Receive Maximum they announce.
            max_inflight_messages 0
            listener {TcpPort} 127.0.0.1
            listener {WebSocketPort} 127.0.0.1
            protocol websockets
            listener {TlsPort} 127.0.0.1
            {certs}
            listener {SecureWebSocketPort} 127.0.0.1
            protocol websockets
            {certs}
            """);
    }

    private void WriteCertificates()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Pinhole Test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var now = DateTimeOffset.UtcNow;
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-2), now.AddDays(60));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var serverRequest = new CertificateRequest("CN=localhost", serverKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        serverRequest.CertificateExtensions.Add(san.Build());
        serverRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var server = serverRequest.Create(ca, now.AddDays(-1), now.AddDays(30), RandomNumberGenerator.GetBytes(8));

        File.WriteAllText(CaFile, ca.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir, "server.crt"), server.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_dir, "server.key"), serverKey.ExportPkcs8PrivateKeyPem());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
