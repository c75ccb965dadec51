using System.Diagnostics;
using System.Globalization;

namespace Pinhole.Transport.Tests.Support;

/// <summary>Starts tests/Pinhole.Testing/peers/rtsp-camera.py on a free loopback port and kills it on dispose.</summary>
internal sealed class RtspCameraProcess : IAsyncDisposable
{
    private readonly Process _process;

    private RtspCameraProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string Url(string path = "/cam", string? userInfo = null) =>
        string.Create(CultureInfo.InvariantCulture, $"rtsp://{(userInfo is null ? "" : userInfo + "@")}127.0.0.1:{Port}{path}");

    public static string ScriptPath => Path.Combine(AppContext.BaseDirectory, "peers", "rtsp-camera.py");

    public static bool Available => File.Exists("/usr/bin/python3") && File.Exists(ScriptPath);

    public static async Task<RtspCameraProcess> StartAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(ScriptPath);
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add("0");
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start rtsp-camera.py");
        var stderr = new System.Text.StringBuilder();
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (true)
            {
                var line = await p.StandardOutput.ReadLineAsync(cts.Token);
                if (line is null) throw new InvalidOperationException("rtsp-camera.py exited: " + stderr);
                if (line.StartsWith("READY port=", StringComparison.Ordinal))
                    return new RtspCameraProcess(p, int.Parse(line["READY port=".Length..], CultureInfo.InvariantCulture));
            }
        }
        catch
        {
            try { p.Kill(true); } catch (InvalidOperationException) { }
            p.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
