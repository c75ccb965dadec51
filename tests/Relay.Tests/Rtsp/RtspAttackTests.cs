using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Options;
using Pinhole.Relay.Web;
using Pinhole.Transport.Security;
using Pinhole.Testing;
using Pinhole.Transport.Rtsp;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>
/// The RTSP server under attack, on loopback, bounded in time and count: connection floods, slowloris,
/// password guessing, Digest replay, Basic on plaintext. Each test acts as the attacker and checks what
/// the attacker got and that a legitimate client still gets in.
/// </summary>
public class RtspAttackTests(ITestOutputHelper output)
{
    private static string Url(RtspHarness h, string path = "gw1/cam") => h.Url(path, credentials: false);

    private static LoginThrottle Throttle(TimeSpan firstLockout) =>
        new(new BrowserViewingOptions { FreeLoginFailures = 3, FirstLockout = firstLockout }.LoginThrottle(), TimeProvider.System);

    [Fact]
    public async Task A_connection_that_never_authenticates_is_cut_at_the_deadline_whatever_it_sends()
    {
        await using var h = await RtspHarness.StartAsync(configure: o => o with { AuthenticationTimeout = TimeSpan.FromSeconds(1) }, output: output);
        await using var slowloris = await RawRtspClient.ConnectAsync(h.Port);
        await using var viewer = await RawRtspClient.ConnectAsync(h.Port);
        viewer.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
        Assert.Equal(404, (await viewer.RequestAsync("DESCRIBE", Url(h))).StatusCode); // authenticated: the camera just is not there

        // Before: OPTIONS and empty interleaved frames reset the 60 s idle timer, holding the slot for ever.
        var cut = false;
        for (var i = 0; i < 50 && !cut; i++) // at most 50 × 200 ms
        {
            try
            {
                await slowloris.SendRawAsync(Encoding.ASCII.GetBytes($"OPTIONS {Url(h)} RTSP/1.0\r\nCSeq: {i + 1}\r\n\r\n"));
                await slowloris.SendRawAsync([(byte)'$', 0, 0, 0]);
            }
            catch (IOException)
            {
                cut = true;
                break;
            }
            cut = await slowloris.ClosedByServerAsync(TimeSpan.FromMilliseconds(200));
        }
        Assert.True(cut, "the unauthenticated connection should be closed");
        Assert.Contains(h.Log!.Lines, l => l.Contains("refused rtsp-authentication-deadline from 127.0.0.1", StringComparison.Ordinal));
        // The authenticated viewer is on the ordinary idle timeout and still served.
        Assert.Equal(200, (await viewer.RequestAsync("OPTIONS", Url(h))).StatusCode);
    }

    [Fact]
    public async Task One_address_holds_at_most_its_share_of_connections_and_others_still_get_in()
    {
        await using var h = await RtspHarness.StartAsync(configure: o => o with { MaxConnections = 20, MaxConnectionsPerAddress = 4 }, output: output);
        var flood = new List<RawRtspClient>();
        try
        {
            var failedToConnect = 0;
            for (var i = 0; i < 30; i++)
            {
                // The server resets what it refuses; a reset that lands during the handshake fails the connect.
                try { flood.Add(await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.2")); }
                catch (SocketException) { failedToConnect++; }
            }
            await RtspServerProtocolTests.WaitUntil(() => h.Metric("pinhole_relay_refusals_total{cause=\"rtsp-connections-per-address\"}") >= 26, seconds: 20);
            var held = 0;
            foreach (var c in flood)
                if (!await c.ClosedByServerAsync(TimeSpan.FromMilliseconds(100))) held++;
            output.WriteLine($"attacker opened 30 connections ({failedToConnect} reset during connect), holds {held}");
            Assert.Equal(4, held);
            Assert.Equal(4, h.Server.ConnectionCount);

            // Another address is served as if nothing happened.
            await using var viewer = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.3");
            Assert.Equal(200, (await viewer.RequestAsync("OPTIONS", Url(h))).StatusCode);
            Assert.Equal(26, h.Metric("pinhole_relay_refusals_total{cause=\"rtsp-connections-per-address\"}"));
            // 26 refusals, one log line.
            Assert.Single(h.Log!.Lines, l => l.Contains("refused rtsp-connections-per-address from 127.0.0.2", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var c in flood) await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task Digest_guesses_are_refused_unchecked_once_the_throttle_locks_even_the_right_one()
    {
        await using var h = await RtspHarness.StartAsync(output: output, throttle: Throttle(TimeSpan.FromMinutes(1)));
        var statuses = new List<int>();
        for (var i = 0; i < 20; i++)
        {
            // A fresh connection per guess, as a guesser would (a connection is closed after 5 failures).
            await using var c = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.2");
            var challenge = await c.RequestAsync("DESCRIBE", Url(h));
            c.Authorization = RawRtspClient.DigestFor(challenge, "DESCRIBE", Url(h), RtspHarness.User, "guess" + i, "MD5");
            var r = await c.RequestAsync("DESCRIBE", Url(h));
            statuses.Add(r.StatusCode);
            if (r.StatusCode == 503) Assert.NotNull(r.Headers["Retry-After"]);
        }
        output.WriteLine(string.Join(" ", statuses));
        // Before: every guess was checked (thousands a second). Now: three free misses, a fourth that locks, then nothing.
        Assert.Equal(4, statuses.Count(s => s == 401));
        Assert.Equal(16, statuses.Count(s => s == 503));

        // The right password from the locked address is not even checked (no oracle while locked).
        await using (var c = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.2"))
        {
            var challenge = await c.RequestAsync("DESCRIBE", Url(h));
            c.Authorization = RawRtspClient.DigestFor(challenge, "DESCRIBE", Url(h), RtspHarness.User, RtspHarness.Password, "MD5");
            Assert.Equal(503, (await c.RequestAsync("DESCRIBE", Url(h))).StatusCode);
        }
        // The account is locked for addresses it never logged in from ...
        await using (var c = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.4"))
        {
            c.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
            Assert.Equal(503, (await c.RequestAsync("DESCRIBE", Url(h))).StatusCode);
        }
    }

    [Fact]
    public async Task The_owner_still_gets_in_from_an_address_it_used_before_while_the_account_is_guessed_at()
    {
        var throttle = Throttle(TimeSpan.FromMinutes(1));
        await using var h = await RtspHarness.StartAsync(output: output, throttle: throttle);
        await using (var owner = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.3"))
        {
            owner.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
            Assert.Equal(404, (await owner.RequestAsync("DESCRIBE", Url(h))).StatusCode);
        }
        // Guesses at alice from many addresses lock the account for strangers.
        for (var i = 0; i < 10; i++) throttle.Failed($"10.9.0.{i}", RtspHarness.User);
        Assert.True(throttle.RetryAfter("10.9.1.1", RtspHarness.User) > TimeSpan.Zero);

        await using (var owner = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.3"))
        {
            var challenge = await owner.RequestAsync("DESCRIBE", Url(h));
            owner.Authorization = RawRtspClient.DigestFor(challenge, "DESCRIBE", Url(h), RtspHarness.User, RtspHarness.Password, "SHA-256");
            Assert.Equal(404, (await owner.RequestAsync("DESCRIBE", Url(h))).StatusCode);
        }
    }

    [Fact]
    public async Task A_captured_digest_header_cannot_be_replayed_on_another_connection_or_on_the_same_one()
    {
        await using var h = await RtspHarness.StartAsync(output: output);
        await using var victim = await RawRtspClient.ConnectAsync(h.Port);
        var challenge = await victim.RequestAsync("DESCRIBE", Url(h));
        // As FFmpeg does: qop=auth with a nonce count.
        var captured = RawRtspClient.DigestFor(challenge, "DESCRIBE", Url(h), RtspHarness.User, RtspHarness.Password, "MD5");
        victim.Authorization = captured;
        Assert.Equal(404, (await victim.RequestAsync("DESCRIBE", Url(h))).StatusCode);

        // Same header, same nonce count, same connection: a replay.
        Assert.Equal(401, (await victim.RequestAsync("DESCRIBE", Url(h))).StatusCode);

        // Same header on a connection of its own: the nonce was issued to the victim's connection only.
        await using var attacker = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.2");
        attacker.Authorization = captured;
        var r = await attacker.RequestAsync("DESCRIBE", Url(h));
        Assert.Equal(401, r.StatusCode);
        // The header was right once, so the client is told to take a fresh nonce (stale=true), as RFC 7616 §3.3 says.
        Assert.All(HttpAuthChallenge.ParseAll(r.Headers.GetValues("WWW-Authenticate")).Where(c => c.Is("Digest")), c => Assert.Equal("true", c["stale"]));
    }

    [Fact]
    public async Task Basic_is_neither_offered_nor_accepted_on_the_plaintext_port_by_default()
    {
        await using var h = await RtspHarness.StartAsync(configure: o => o with { AllowBasicOnPlaintext = false }, output: output);
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        c.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
        var r = await c.RequestAsync("DESCRIBE", Url(h));
        Assert.Equal(401, r.StatusCode);
        var schemes = HttpAuthChallenge.ParseAll(r.Headers.GetValues("WWW-Authenticate")).Select(x => x.Scheme).ToList();
        Assert.DoesNotContain("Basic", schemes);
        Assert.Contains("Digest", schemes);
        c.Authorization = RawRtspClient.DigestFor(r, "DESCRIBE", Url(h), RtspHarness.User, RtspHarness.Password, "SHA-256");
        Assert.Equal(404, (await c.RequestAsync("DESCRIBE", Url(h))).StatusCode);
    }

    [Fact]
    public async Task Without_viewers_nobody_may_watch_unless_anonymous_viewing_is_on()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false, configure: o => o with { AnonymousViewing = false }, output: output);
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(401, (await c.RequestAsync("DESCRIBE", Url(h))).StatusCode);
        Assert.Contains(h.Log!.Lines, l => l.Contains("anonymousViewing is off", StringComparison.Ordinal));

        await using var open = await RtspHarness.StartAsync(withViewers: false, output: output);
        await using var d = await RawRtspClient.ConnectAsync(open.Port);
        Assert.Equal(404, (await d.RequestAsync("DESCRIBE", Url(open))).StatusCode);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_viewer_that_stops_reading_is_cut_off_without_an_error_in_the_log()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false,
            o => o with { SocketSendBufferBytes = 32 * 1024, WriteTimeout = TimeSpan.FromSeconds(2) }, output: output);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264Busy).Start();
        await using var stalled = await RawRtspClient.ConnectAsync(h.Port, receiveBuffer: 4096);
        Assert.Equal(200, (await stalled.PlayTcpAsync(Url(h), 1)).StatusCode);
        // Never reads again: the relay's write blocks, and after WriteTimeout the relay hangs up.
        await RtspServerProtocolTests.WaitUntil(() => h.Log!.Lines.Any(l => l.Contains("ended: client stopped reading", StringComparison.Ordinal)), seconds: 20);
        // Before: the aborted write surfaced as an unexpected exception, logged as an Error with a stack trace.
        Assert.DoesNotContain(h.Log!.Lines, l => l.Contains(" Error ", StringComparison.Ordinal) || l.Contains(" Critical ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_playing_viewer_is_not_cut_off_when_its_address_gets_locked_by_someone_else()
    {
        var throttle = Throttle(TimeSpan.FromMinutes(1));
        await using var h = await RtspHarness.StartAsync(output: output, throttle: throttle);
        await using var owner = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.3");
        var challenge = await owner.RequestAsync("DESCRIBE", Url(h));
        var digest = HttpClientAuthenticator.Create(
            HttpAuthChallenge.ParseAll(challenge.Headers.GetValues("WWW-Authenticate")).Where(c => c.Is("Digest")).ToList(),
            RtspHarness.User, RtspHarness.Password)!;
        owner.Authorization = digest.Authorize("DESCRIBE", Url(h));
        Assert.Equal(404, (await owner.RequestAsync("DESCRIBE", Url(h))).StatusCode);

        // Someone behind the same NAT guesses until the address is locked.
        for (var i = 0; i < 6; i++) throttle.Failed("127.0.0.3", "mallory");
        Assert.True(throttle.RetryAfter("127.0.0.3", RtspHarness.User) > TimeSpan.Zero);

        // The owner's connection carries on (as its keepalives would); a new one from there waits.
        owner.Authorization = digest.Authorize("DESCRIBE", Url(h));
        Assert.Equal(404, (await owner.RequestAsync("DESCRIBE", Url(h))).StatusCode);
        await using var other = await RawRtspClient.ConnectAsync(h.Port, from: "127.0.0.3");
        var c2 = await other.RequestAsync("DESCRIBE", Url(h));
        other.Authorization = RawRtspClient.DigestFor(c2, "DESCRIBE", Url(h), RtspHarness.User, RtspHarness.Password, "MD5");
        Assert.Equal(503, (await other.RequestAsync("DESCRIBE", Url(h))).StatusCode);
    }
}
