using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pinhole.Relay.Devices;
using Pinhole.Streaming;
using Pinhole.Relay.Uplink;
using Pinhole.Testing;
using System.Diagnostics.Metrics;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>A minimal relay: Kestrel on a free loopback port with only the uplink endpoint.</summary>
internal sealed class TestRelay : IAsyncDisposable
{
    public static readonly Dictionary<string, string> Devices = new() { ["gw1"] = "secret-gw1", ["gw2"] = "secret-gw2" };

    private TestRelay(WebApplication app, MeterProbe metrics, int port, bool tls, TestOutputLoggerProvider log)
    {
        App = app;
        Metrics = metrics;
        Log = log;
        Port = port;
        Uplink = new Uri($"{(tls ? "wss" : "ws")}://127.0.0.1:{port}/uplink");
    }

    public WebApplication App { get; }

    /// <summary>What the relay logged (Information and up).</summary>
    public TestOutputLoggerProvider Log { get; }
    public int Port { get; }
    public Uri Uplink { get; }
    public MediaStreamRegistry Streams => App.Services.GetRequiredService<MediaStreamRegistry>();
    /// <summary>The relay's instruments, read as a scrape of /metrics would (this minimal relay has no exporter).</summary>
    public MeterProbe Metrics { get; }
    public UplinkSessionRegistry Sessions => App.Services.GetRequiredService<UplinkSessionRegistry>();

    public static async Task<TestRelay> StartAsync(ITestOutputHelper output, Action<UplinkEndpointOptions>? configure = null, X509Certificate2? certificate = null, int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var log = new TestOutputLoggerProvider(output, "relay");
        builder.Logging.AddProvider(log);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, listen =>
        {
            if (certificate is not null) listen.UseHttps(certificate);
        }));
        builder.Services.AddSingleton(new MediaStreamRegistry());
        builder.Services.AddSingleton<IDeviceAuthenticator>(new DictionaryAuthenticator(Devices));
        builder.Services.AddUplink(configure);
        var app = builder.Build();
        var metrics = new MeterProbe(app.Services.GetRequiredService<Meter>());
        app.UseWebSockets();
        app.MapUplink();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestRelay(app, metrics, new Uri(address).Port, certificate is not null, log);
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await App.StopAsync(cts.Token);
        await App.DisposeAsync();
        Metrics.Dispose();
    }

    private sealed class DictionaryAuthenticator(Dictionary<string, string> devices) : IDeviceAuthenticator
    {
        public ValueTask<bool> AuthenticateAsync(string deviceId, string token, CancellationToken cancellationToken) =>
            ValueTask.FromResult(devices.TryGetValue(deviceId, out var expected)
                && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                    System.Text.Encoding.UTF8.GetBytes(expected), System.Text.Encoding.UTF8.GetBytes(token)));
    }
}

internal static class TestLogging
{
    public static ILoggerFactory For(ITestOutputHelper output, string prefix) =>
        LoggerFactory.Create(b => b.AddProvider(new TestOutputLoggerProvider(output, prefix)).SetMinimumLevel(LogLevel.Information));
}
