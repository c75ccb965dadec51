using Pinhole.Testing.Time;
using Pinhole.Transport.Uplink;

namespace Pinhole.Transport.Tests.Uplink;

public sealed class UplinkSessionTests
{
    private static readonly TimeSpan Handshake = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan DeadLink = TimeSpan.FromSeconds(30);

    private static UplinkSession Relay(ManualTimeProvider time) => new(UplinkRole.Relay, Handshake, Heartbeat, DeadLink, time);

    private static UplinkSession Device(ManualTimeProvider time, TimeSpan? heartbeat = null) =>
        new(UplinkRole.Device, Handshake, heartbeat ?? Heartbeat, DeadLink, time);

    private static Welcome WelcomeWith(TimeSpan heartbeat, ushort version = UplinkProtocol.Version) =>
        new(version, UplinkCapabilities.Media, heartbeat, TimeSpan.FromMilliseconds(250), 1 << 20);

    // Both ends' sessions exchange the real handshake messages, as the two apps do.
    [Fact]
    public void Handshake_happy_path_opens_both_ends()
    {
        var time = new ManualTimeProvider();
        var device = Device(time);
        var relay = Relay(time);

        var hello = device.CreateHello(UplinkCapabilities.Media | UplinkCapabilities.Data, "pinhole-edge/test");
        var checkedHello = relay.OnHello(hello);
        Assert.True(checkedHello.Succeeded);
        Assert.Same(hello, checkedHello.Hello);
        Assert.Equal(UplinkSessionPhase.Handshaking, relay.Phase);

        var welcome = relay.CreateWelcome(hello.Capabilities & UplinkCapabilities.Media, TimeSpan.FromMilliseconds(250), 1 << 20);
        relay.Open(welcome);
        var answer = device.OnWelcome(welcome);

        Assert.True(answer.Succeeded);
        Assert.Equal(UplinkSessionPhase.Open, relay.Phase);
        Assert.Equal(UplinkSessionPhase.Open, device.Phase);
        Assert.Equal(UplinkCapabilities.Media, device.Welcome!.Capabilities);
        Assert.Equal(UplinkProtocol.Version, welcome.Version);
        Assert.Null(device.EndReason);
        Assert.Null(relay.EndReason);
    }

    [Theory]
    [InlineData(2, 3)]
    [InlineData(0, 0)]
    public void Relay_rejects_a_hello_without_its_version(ushort min, ushort max)
    {
        var relay = Relay(new ManualTimeProvider());
        var result = relay.OnHello(new Hello(min, max, UplinkCapabilities.Media, "old"));

        Assert.False(result.Succeeded);
        Assert.Equal(UplinkReason.UnsupportedVersion, result.Reject!.Reason);
        Assert.Contains($"{min}-{max}", result.Reject.Text, StringComparison.Ordinal);
        Assert.Equal(UplinkSessionPhase.Closing, relay.Phase);
        Assert.StartsWith("rejected: unsupported-version", relay.EndReason, StringComparison.Ordinal);
    }

    [Fact]
    public void Relay_rejects_anything_but_a_hello_first_and_fails_on_close()
    {
        var relay = Relay(new ManualTimeProvider());
        var result = relay.OnHello(new Ping(1));
        Assert.Equal(UplinkReason.ProtocolError, result.Reject!.Reason);
        Assert.Contains("expected hello, got Ping", result.Reject.Text, StringComparison.Ordinal);

        var closed = Relay(new ManualTimeProvider()).OnHello(null);
        Assert.False(closed.Succeeded);
        Assert.Null(closed.Reject);
        Assert.Equal("closed before hello", closed.Failure);
    }

    [Fact]
    public void Device_refuses_a_welcome_in_another_version_and_reports_a_reject()
    {
        var time = new ManualTimeProvider();
        var other = Device(time).OnWelcome(WelcomeWith(Heartbeat, version: UplinkProtocol.Version + 1));
        Assert.False(other.Succeeded);
        Assert.Contains("protocol version 2", other.Failure, StringComparison.Ordinal);

        var device = Device(time);
        var refused = device.OnWelcome(new Reject(UplinkReason.Unauthorized, "wrong token"));
        Assert.False(refused.Succeeded);
        Assert.Equal(UplinkReason.Unauthorized, refused.Reject!.Reason);
        Assert.Equal(UplinkSessionPhase.Closing, device.Phase);

        var garbage = Device(time).OnWelcome(new Hello(1, 1, UplinkCapabilities.None, "x"));
        Assert.Equal("expected welcome, got Hello", garbage.Failure);
        Assert.Equal("expected welcome, got close", Device(time).OnWelcome(null).Failure);
    }

    [Fact]
    public void Roles_and_phases_are_enforced()
    {
        var time = new ManualTimeProvider();
        Assert.Throws<InvalidOperationException>(() => Relay(time).CreateHello(UplinkCapabilities.None, "x"));
        Assert.Throws<InvalidOperationException>(() => Device(time).OnHello(new Hello(1, 1, UplinkCapabilities.None, "x")));
        var device = Device(time);
        device.OnWelcome(WelcomeWith(Heartbeat));
        Assert.Throws<InvalidOperationException>(() => device.OnWelcome(WelcomeWith(Heartbeat)));
    }

    [Fact]
    public void Handshake_times_out_after_its_timeout_and_not_before()
    {
        var time = new ManualTimeProvider();
        var relay = Relay(time);
        time.Advance(Handshake - TimeSpan.FromMilliseconds(1));
        Assert.Null(relay.Tick().DeadLink);
        Assert.Equal(UplinkSessionPhase.Handshaking, relay.Phase);

        time.Advance(TimeSpan.FromMilliseconds(1));
        var tick = relay.Tick();
        Assert.Equal("rejected: timeout: no hello within 10 s", tick.DeadLink);
        Assert.Equal(UplinkSessionPhase.Closing, relay.Phase);

        var device = Device(time);
        Assert.Null(device.HandshakeTimedOut());
        Assert.Equal("no answer within 10 s", device.EndReason);
        var reject = Relay(time).HandshakeTimedOut();
        Assert.Equal(UplinkReason.Timeout, reject!.Reason);
    }

    [Fact]
    public void Heartbeat_is_sent_when_due_and_uses_the_shorter_interval()
    {
        var time = new ManualTimeProvider();
        var device = Device(time, heartbeat: TimeSpan.FromSeconds(20));
        device.OnWelcome(WelcomeWith(TimeSpan.FromSeconds(5)));
        Assert.Equal(TimeSpan.FromSeconds(5), device.HeartbeatInterval);

        time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.Null(device.Tick().Ping);
        time.Advance(TimeSpan.FromSeconds(0.1));
        var ping = device.Tick().Ping;
        Assert.NotNull(ping);
        Assert.Equal(device.NowMicros(), ping.Timestamp);
        // Not again until another interval passed.
        Assert.Null(device.Tick().Ping);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.NotNull(device.Tick().Ping);
    }

    [Fact]
    public void Heartbeats_go_out_while_traffic_flows_but_receiving_keeps_the_link_alive()
    {
        var time = new ManualTimeProvider();
        var relay = Relay(time);
        relay.Open(relay.CreateWelcome(UplinkCapabilities.Media, TimeSpan.FromMilliseconds(250), 1 << 20));
        var pings = 0;
        for (var i = 0; i < 120; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            relay.OnReceived(new Pong(0));
            var tick = relay.Tick();
            Assert.Null(tick.DeadLink);
            if (tick.Ping is not null) pings++;
        }
        Assert.Equal(12, pings); // every 10 s for 120 s
        Assert.Equal(UplinkSessionPhase.Open, relay.Phase);
    }

    [Fact]
    public void Dead_link_is_declared_within_the_timeout_and_not_before_the_last_tick()
    {
        var time = new ManualTimeProvider();
        var device = Device(time);
        device.OnWelcome(WelcomeWith(Heartbeat));
        var tick = device.TickInterval;
        Assert.Equal(TimeSpan.FromSeconds(1), tick);

        // Silence up to the last tick before the timeout: alive.
        time.Advance(DeadLink - tick);
        Assert.Null(device.Tick().DeadLink);
        Assert.Equal(UplinkSessionPhase.Open, device.Phase);

        // Past it, a tick declares the link dead, so that detection is never later than DeadLinkTimeout.
        time.Advance(TimeSpan.FromMilliseconds(1));
        var verdict = device.Tick();
        Assert.Equal("dead link: nothing received for 29.0 s", verdict.DeadLink);
        Assert.Null(verdict.Ping);
        Assert.Equal(UplinkSessionPhase.Closing, device.Phase);
        Assert.Equal(verdict.DeadLink, device.EndReason);
        // Declared once.
        Assert.Null(device.Tick().DeadLink);
        Assert.Null(device.CheckDeadLink());
    }

    [Fact]
    public void Traffic_resets_the_dead_link_clock()
    {
        var time = new ManualTimeProvider();
        var relay = Relay(time);
        relay.Open(relay.CreateWelcome(UplinkCapabilities.Media, TimeSpan.FromMilliseconds(250), 1 << 20));

        time.Advance(TimeSpan.FromSeconds(25));
        Assert.Null(relay.OnReceived(new DropReport(1, 0, 0)));
        Assert.Equal(TimeSpan.Zero, relay.Silence);
        time.Advance(TimeSpan.FromSeconds(25));
        Assert.Null(relay.CheckDeadLink());
        time.Advance(TimeSpan.FromSeconds(4.5));
        Assert.NotNull(relay.CheckDeadLink());
    }

    [Fact]
    public void Ping_is_answered_and_pong_sets_the_round_trip()
    {
        var time = new ManualTimeProvider();
        var device = Device(time);
        device.OnWelcome(WelcomeWith(Heartbeat));

        Assert.Equal(new Pong(42), device.OnReceived(new Ping(42)));
        Assert.Null(device.RoundTripTime);

        var sent = device.NowMicros();
        time.Advance(TimeSpan.FromMilliseconds(35));
        Assert.Null(device.OnReceived(new Pong(sent)));
        Assert.Equal(TimeSpan.FromMilliseconds(35), device.RoundTripTime);

        // A pong from the future (a confused peer) reads as zero, not as an underflow.
        device.OnReceived(new Pong(ulong.MaxValue));
        Assert.Equal(TimeSpan.Zero, device.RoundTripTime);
    }

    [Fact]
    public void Goodbye_and_close_end_the_session_with_the_first_reason()
    {
        var time = new ManualTimeProvider();
        var relay = Relay(time);
        relay.Open(relay.CreateWelcome(UplinkCapabilities.Media, TimeSpan.FromMilliseconds(250), 1 << 20));

        relay.OnReceived(new Goodbye(UplinkReason.Shutdown, "device shutting down"));
        Assert.Equal(UplinkSessionPhase.Closing, relay.Phase);
        Assert.Equal("device said goodbye: shutdown: device shutting down", relay.EndReason);
        Assert.Null(relay.Tick().Ping);

        relay.OnReceived(null);
        Assert.False(relay.Close("later"));
        relay.Closed("closed by the device");
        Assert.Equal(UplinkSessionPhase.Closed, relay.Phase);
        Assert.Equal("device said goodbye: shutdown: device shutting down", relay.EndReason);

        var device = Device(time);
        device.OnWelcome(WelcomeWith(Heartbeat));
        device.OnReceived(null);
        Assert.Equal("relay closed the connection", device.EndReason);
        // No heartbeats once closing; a close that hangs is still abandoned as a dead link, once, keeping the first reason.
        time.Advance(TimeSpan.FromMinutes(5));
        var tick = device.Tick();
        Assert.Null(tick.Ping);
        Assert.StartsWith("dead link: nothing received for 300.0 s", tick.DeadLink, StringComparison.Ordinal);
        Assert.Equal("relay closed the connection", device.EndReason);
        Assert.Equal(default, device.Tick());
        device.Closed("gone");
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(default, device.Tick());
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("2, 1", true)]
    [InlineData(" 1 ,3", true)]
    [InlineData("2", false)]
    [InlineData("one", false)]
    [InlineData("0", false)]
    [InlineData("", false)]
    public void Version_header_offers_are_read(string header, bool offers)
    {
        Assert.Equal(offers, UplinkSession.OffersOurVersion(header));
        Assert.True(UplinkSession.OffersOurVersion(UplinkSession.VersionHeaderValue));
    }
}
