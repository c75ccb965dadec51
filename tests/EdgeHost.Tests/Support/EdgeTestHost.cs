using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Systemd;
using Pinhole.EdgeHost.Web;
using Pinhole.Transport.Security;

namespace Pinhole.EdgeHost.Tests.Support;

/// <summary>The real edge host (Kestrel on a free loopback port) with fake pipelines behind the factory seam.</summary>
public sealed class EdgeTestHost : IAsyncDisposable
{
    private EdgeTestHost(WebApplication app, TempConfigDir dir, string configPath, StartLog log)
    {
        App = app;
        Dir = dir;
        ConfigPath = configPath;
        Starts = log;
    }

    public WebApplication App { get; }
    public TempConfigDir Dir { get; }
    public string ConfigPath { get; }
    public StartLog Starts { get; }
    public Uri BaseAddress { get; private set; } = null!;
    public PipelineSupervisor Supervisor => App.Services.GetRequiredService<PipelineSupervisor>();

    public static async Task<EdgeTestHost> StartAsync(string? json = null, SystemdEnvironment? systemd = null,
        LoginThrottleOptions? throttle = null, Action<IServiceCollection>? services = null, SupervisorOptions? supervisor = null)
    {
        var dir = new TempConfigDir();
        var path = dir.Write(json ?? TempConfigDir.Sample());
        var loaded = EdgeConfigLoader.LoadFile(path);
        Assert.True(loaded.IsValid, string.Join("\n", loaded.Problems));
        var log = new StartLog();
        var options = new EdgeHostOptions
        {
            ConfigPath = path,
            Config = loaded.Config!,
            Systemd = systemd ?? SystemdEnvironment.None,
            LoginThrottle = throttle ?? new EdgeHostOptions { ConfigPath = path, Config = loaded.Config! }.LoginThrottle,
            Supervisor = supervisor ?? new SupervisorOptions { TickInterval = TimeSpan.FromMilliseconds(100) },
            LogLevel = LogLevel.Warning,
            IncludeFeatures = false,
            ConfigureServices = s =>
            {
                s.AddSingleton(log);
                s.AddPipelineFactory<FakeFeatureFactory>();
                services?.Invoke(s);
            },
        };
        var app = EdgeApp.Build(options);
        var host = new EdgeTestHost(app, dir, path, log);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        host.BaseAddress = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        return host;
    }

    public HttpClient CreateClient(bool cookies = true) =>
        new(new HttpClientHandler { UseCookies = cookies, CookieContainer = new CookieContainer(), AllowAutoRedirect = false })
        { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(20) };

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Dir.Dispose();
    }

    /// <summary>Polls <paramref name="condition"/> until true or the timeout passes.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out after {timeout.TotalSeconds}s waiting for {what}");
            await Task.Delay(20);
        }
    }
}
