using System.Text.Json;
using System.Text.RegularExpressions;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Testing;

namespace Pinhole.Integration.Tests.Telemetry;

/// <summary>The telemetry publisher as a child process (tests/TelemetryTestHost), so it can be killed with SIGKILL.</summary>
internal sealed partial class TelemetryHostProcess : IAsyncDisposable
{
    private readonly string _configPath;
    private PeerProcess? _process;
    private int _starts;

    public TelemetryHostProcess(string directory, EdgeConfig config)
    {
        Directory.CreateDirectory(directory);
        _configPath = Path.Combine(directory, "edge.json");
        WriteConfig(config);
    }

    public PeerProcess Process => _process ?? throw new InvalidOperationException("not started");

    public string Output => _process?.Output ?? "";

    public void WriteConfig(EdgeConfig config) =>
        File.WriteAllText(_configPath, JsonSerializer.Serialize(config, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));

    public async Task StartAsync()
    {
        if (_process is { HasExited: false }) throw new InvalidOperationException("already running");
        if (_process is not null) await _process.DisposeAsync();
        var dll = Path.Combine(AppContext.BaseDirectory, "Pinhole.TelemetryTestHost.dll");
        _process = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", dll, "--config", _configPath)
        {
            Name = $"telemetry-host#{++_starts}",
            ReadyLine = Running(),
            ReadyTimeout = TimeSpan.FromSeconds(60),
            OutputLines = 2000,
            Environment = new Dictionary<string, string?> { ["DOTNET_gcServer"] = "0", ["DOTNET_TieredPGO"] = "0" },
        });
    }

    /// <summary>kill -9: no clean MQTT disconnect, no flush, no cursor save.</summary>
    public async Task KillAsync()
    {
        if (_process is null) return;
        _process.Kill(); // SIGKILL to the process and its group
        await _process.WaitForExitAsync(TimeSpan.FromSeconds(10));
    }

    public async Task StopAsync()
    {
        if (_process is null) return;
        await _process.StopAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
    }

    [GeneratedRegex("telemetry host running")]
    private static partial Regex Running();
}
