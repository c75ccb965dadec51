using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Tests.Telemetry;

/// <summary>Which route <see cref="UplinkMqttConnector"/> takes for each <c>mqtt.via</c> (the bridge itself is tested against
/// Mosquitto and a real relay in Integration.Tests' TelemetryThroughUplinkTests).</summary>
public sealed class UplinkMqttConnectorTests : IDisposable
{
    private readonly Meter _meter = new("test-route");

    private static readonly TelemetryConnectOptions Options = new(new Uri("ws://broker.invalid/mqtt"), "pinhole-edge-gw1", null, null,
        "pinhole/gw1/status", "offline", TimeSpan.FromSeconds(15), TimeSpan.FromDays(1), null);

    public void Dispose() => _meter.Dispose();

    private UplinkMqttConnector Connector(FailingBroker inner, FakeUplink uplink, TelemetryRoute route) =>
        new(inner, uplink, route, new TelemetryCounters(_meter), NullLogger.Instance);

    [Fact]
    public async Task Auto_goes_through_the_uplink_when_the_broker_cannot_be_reached_and_the_relay_offers_it()
    {
        var inner = new FailingBroker();
        var uplink = new FakeUplink(available: true);
        var e = await Assert.ThrowsAsync<TunnelResetException>(() => Connector(inner, uplink, TelemetryRoute.Auto).ConnectAsync(Options, _ => Task.CompletedTask, CancellationToken.None));
        Assert.Equal("the fake relay refused", e.Message);
        Assert.Equal(["ws://broker.invalid/mqtt"], inner.Attempts);
        Assert.Equal(["mqtt"], uplink.Opened);
    }

    [Fact]
    public async Task Auto_without_a_relay_that_offers_it_reports_the_broker_failure()
    {
        var inner = new FailingBroker();
        var uplink = new FakeUplink(available: false);
        await Assert.ThrowsAsync<IOException>(() => Connector(inner, uplink, TelemetryRoute.Auto).ConnectAsync(Options, _ => Task.CompletedTask, CancellationToken.None));
        Assert.Single(inner.Attempts);
        Assert.Empty(uplink.Opened);
    }

    [Fact]
    public async Task Direct_never_uses_the_uplink_and_uplink_never_tries_the_broker()
    {
        var inner = new FailingBroker();
        var uplink = new FakeUplink(available: true);
        await Assert.ThrowsAsync<IOException>(() => Connector(inner, uplink, TelemetryRoute.Direct).ConnectAsync(Options, _ => Task.CompletedTask, CancellationToken.None));
        Assert.Empty(uplink.Opened);

        var inner2 = new FailingBroker();
        await Assert.ThrowsAsync<TunnelResetException>(() => Connector(inner2, uplink, TelemetryRoute.Uplink).ConnectAsync(Options, _ => Task.CompletedTask, CancellationToken.None));
        Assert.Empty(inner2.Attempts);
        Assert.Equal(["mqtt"], uplink.Opened);
    }

    [Theory]
    [InlineData(null, "Auto")]
    [InlineData("auto", "Auto")]
    [InlineData("direct", "Direct")]
    [InlineData("uplink", "Uplink")]
    [InlineData("UPLINK", null)]
    [InlineData("relay", null)]
    public void Via_values(string? via, string? expected) => Assert.Equal(expected, TelemetryPipelines.ParseRoute(via)?.ToString());

    private sealed class FailingBroker : ITelemetryMqttConnector
    {
        public List<string> Attempts { get; } = [];

        public Task<ITelemetryMqttConnection> ConnectAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken)
        {
            Attempts.Add(options.Url.ToString());
            throw new IOException("The server returned status code '400' when status code '101' was expected.");
        }
    }

    private sealed class FakeUplink(bool available) : IRelayStreamOpener
    {
        public List<string> Opened { get; } = [];

        public bool RelayServicesAvailable => available;

        public Task<TunnelStream> OpenRelayStreamAsync(string service, CancellationToken cancellationToken)
        {
            Opened.Add(service);
            throw new TunnelResetException(TunnelResetCode.NotExposed, "the fake relay refused");
        }
    }
}
