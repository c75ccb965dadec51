using System.Net;
using System.Net.Sockets;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Remote;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// WebRTC where UDP is blocked: camera, edge, relay and Chromium all run in a fresh network
/// namespace whose iptables drop every UDP packet, so ICE must fall back to ICE-TCP (RFC 6544,
/// the relay's passive candidate on the same port number). Chromium's driver listens inside the
/// namespace; the test reaches it through a small TCP forwarder.
/// </summary>
[Collection(EndToEnd.Collection)]
public partial class WebRtcUdpBlockedTests(ITestOutputHelper output)
{
    private const string Address = "10.231.0.1";

    [RequiresFact(Needs.NetworkNamespaces | Needs.Chromium | Needs.RtspCamera)]
    public async Task With_UDP_blocked_Chromium_plays_over_ICE_TCP()
    {
        var ns = $"ph-{Environment.ProcessId}-rtc-{Guid.NewGuid().ToString("N")[..6]}";
        await Pinhole.Testing.Command.RunCheckedAsync("ip", "netns", "add", ns);
        try
        {
            await Pinhole.Testing.Command.RunCheckedAsync("ip", "-n", ns, "link", "set", "lo", "up");
            // Chromium gathers no candidates on loopback alone: give it an interface (private address, this namespace only).
            // (a veth pair with both ends inside; the kernel here has no dummy driver).
            await Pinhole.Testing.Command.RunCheckedAsync("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1");
            await Pinhole.Testing.Command.RunCheckedAsync("ip", "-n", ns, "addr", "add", $"{Address}/24", "dev", "eth0");
            await Pinhole.Testing.Command.RunCheckedAsync("ip", "-n", ns, "link", "set", "eth0", "up");
            await Pinhole.Testing.Command.RunCheckedAsync("ip", "-n", ns, "link", "set", "eth1", "up");
            foreach (var chain in new[] { "INPUT", "OUTPUT" })
                await Pinhole.Testing.Command.RunCheckedAsync("ip", "netns", "exec", ns, "iptables", "-A", chain, "-p", "udp", "-j", "DROP");
            await PlayAsync(ns);
        }
        finally
        {
            await Pinhole.Testing.Command.RunAsync("ip", "netns", "del", ns);
        }
    }

    private async Task PlayAsync(string ns)
    {
        var port = FreePort.GetTcpAndUdp();
        await using var stack = await EndToEndStack.StartAsync(output,
            new RtspCameraOptions { Video = CameraVideo.H264, Width = 640, Height = 360, Gop = 25, NetworkNamespace = ns },
            configure: s =>
            {
                s.NetworkNamespace = ns;
                s.RelayExtra["webrtc"] = new { udp = $"0.0.0.0:{port}", publicAddresses = new[] { Address } };
            });
        // The driver picks its own port inside the namespace and says which: a number chosen out here
        // may already be taken in there by the relay or edge (the host's "free" says nothing about
        // the namespace), and then the test would be talking to the wrong server.
        await using var driver = await PeerProcess.StartAsync(new PeerStartInfo(Chromium.DriverPath, "--port=0")
        {
            Name = "chromedriver",
            NetworkNamespace = ns,
            ReadyLine = DriverReady(),
        });
        var driverPort = int.Parse(driver.ReadyMatch!.Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture);
        using var forward = new TcpForwarder(ns, driverPort);
        await WaitForDriverStatusAsync(forward.Port, driver);
        var profile = Directory.CreateTempSubdirectory("pinhole-chromium-").FullName;
        var options = new ChromeOptions { BinaryLocation = Chromium.BrowserPath };
        options.AddArguments(Chromium.DefaultArguments);
        options.AddArgument($"--user-data-dir={profile}");
        options.AddArgument("--window-size=1280,720");
        RemoteWebDriver browser;
        try
        {
            browser = new RemoteWebDriver(new Uri($"http://127.0.0.1:{forward.Port}"), options.ToCapabilities(), TimeSpan.FromSeconds(60));
        }
        catch (WebDriverException e)
        {
            throw new InvalidOperationException($"Chromium did not start inside {ns}: {e.Message}\n{driver.Describe("chromedriver")}", e);
        }
        try
        {
            browser.Navigate().GoToUrl(new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}"));
            browser.FindElement(By.Name("user")).SendKeys(EndToEnd.ViewerUser);
            browser.FindElement(By.Name("password")).SendKeys(EndToEnd.ViewerPassword);
            browser.FindElement(By.CssSelector("button[type=submit]")).Click();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            string? transport = null;
            while (DateTime.UtcNow < deadline)
            {
                transport = browser.ExecuteScript("return window.pinhole ? window.pinhole.transport : null;") as string;
                if (transport is "webrtc" or "mse") break;
                await Task.Delay(200);
            }
            var protocol = browser.ExecuteAsyncScript("""
                const done = arguments[arguments.length - 1];
                if (!window.pinhole.pc) { done('no pc'); return; }
                window.pinhole.pc.getStats().then((report) => {
                  let selected = null; const pairs = {}; const candidates = {};
                  report.forEach((s) => {
                    if (s.type === 'transport') selected = s.selectedCandidatePairId;
                    if (s.type === 'candidate-pair') pairs[s.id] = s;
                    if (s.type === 'remote-candidate') candidates[s.id] = s.protocol;
                  });
                  const pair = selected && pairs[selected];
                  done(pair ? candidates[pair.remoteCandidateId] : 'no selected pair');
                });
                """) as string;
            long Frames() => Convert.ToInt64(browser.ExecuteAsyncScript(WebRtcTests.InboundVideo) is IReadOnlyCollection<object> v ? v.First() : -1, System.Globalization.CultureInfo.InvariantCulture);
            var first = Frames();
            await Task.Delay(10_000);
            var decoded = Frames() - first;
            output.WriteLine($"UDP blocked: transport {transport}, remote candidate {protocol}, {decoded} frames decoded in 10 s");
            Assert.Equal("webrtc", transport);
            Assert.Equal("tcp", protocol);
            Assert.True(decoded > 200, $"decoded {decoded} frames in 10 s over ICE-TCP\n{stack.Logs}");
        }
        finally
        {
            browser.Quit();
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"started successfully on port (?<port>\d+)")]
    private static partial System.Text.RegularExpressions.Regex DriverReady();

    /// <summary>Waits until the driver answers its status endpoint as a WebDriver server (ready: true).</summary>
    private static async Task WaitForDriverStatusAsync(int port, PeerProcess driver)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(15);
        string last = "no answer";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/status"));
                using var status = System.Text.Json.JsonDocument.Parse(last);
                if (status.RootElement.TryGetProperty("value", out var value) && value.TryGetProperty("ready", out var ready) && ready.GetBoolean())
                    return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException or InvalidOperationException)
            {
                last = e.Message;
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"chromedriver not ready within 15 s (last: {last})\n{driver.Describe("chromedriver")}");
    }

    /// <summary>Accepts on 127.0.0.1 here and pipes each connection to a port inside the namespace.</summary>
    private sealed class TcpForwarder : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();

        public TcpForwarder(string ns, int port)
        {
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    TcpClient client;
                    try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                    catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
                    _ = Task.Run(async () =>
                    {
                        using (client)
                        using (var inner = await NetworkNamespace.ConnectFromAsync(ns, IPAddress.Loopback, port, TimeSpan.FromSeconds(10)))
                        {
                            var a = client.GetStream();
                            var b = inner.GetStream();
                            try { await Task.WhenAny(a.CopyToAsync(b, _stop.Token), b.CopyToAsync(a, _stop.Token)); }
                            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException) { }
                        }
                    });
                }
            });
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
