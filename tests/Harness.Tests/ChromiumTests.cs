using System.Net;
using System.Text;
using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

public class ChromiumTests
{
    // The page asks the server for a number over fetch and writes six times it into the DOM, so the
    // value the test reads exists only if the page loaded, its script ran, and it reached the server.
    private const string Page = """
        <!doctype html>
        <html><head><title>harness</title></head>
        <body style="background:#2a6">
          <div id="out">pending</div>
          <script>
            fetch('/value').then(r => r.text()).then(t => {
              document.getElementById('out').textContent = String(Number(t) * 6);
            });
          </script>
        </body></html>
        """;

    [RequiresFact(Needs.Chromium)]
    public async Task Loads_a_loopback_page_and_reads_a_value_its_script_computed()
    {
        var port = FreePort.Get();
        using var http = new HttpListener();
        http.Prefixes.Add($"http://127.0.0.1:{port}/");
        http.Start();
        var requests = new List<string>();
        var server = Task.Run(async () =>
        {
            while (http.IsListening)
            {
                HttpListenerContext ctx;
                try
                {
                    ctx = await http.GetContextAsync();
                }
                catch (HttpListenerException)
                {
                    return;
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
                var path = ctx.Request.Url!.AbsolutePath;
                lock (requests)
                    requests.Add(path);
                var (body, type) = path == "/value" ? ("7", "text/plain") : path == "/" ? (Page, "text/html") : ("", "text/plain");
                ctx.Response.StatusCode = body.Length == 0 ? 404 : 200;
                ctx.Response.ContentType = type;
                var bytes = Encoding.UTF8.GetBytes(body);
                await ctx.Response.OutputStream.WriteAsync(bytes);
                ctx.Response.Close();
            }
        });

        string profile;
        using (var browser = Chromium.Start())
        {
            profile = browser.UserDataDirectory;
            Assert.True(Directory.Exists(profile));
            browser.Navigate(new Uri($"http://127.0.0.1:{port}/"));
            Assert.Equal("harness", browser.Execute<string>("return document.title;"));

            var value = await browser.WaitForAsync("document.getElementById('out').textContent !== 'pending' && document.getElementById('out').textContent", TimeSpan.FromSeconds(20));
            Assert.Equal("42", value);
            Assert.True(browser.Execute<bool>("return navigator.userAgent.includes('Headless');"));

            var shot = browser.SaveScreenshot(nameof(Loads_a_loopback_page_and_reads_a_value_its_script_computed));
            Assert.StartsWith(RepoPaths.Artifacts, shot);
            var png = await File.ReadAllBytesAsync(shot);
            Assert.True(png.Length > 100);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }

        lock (requests)
            Assert.Contains("/value", requests);
        Assert.False(Directory.Exists(profile), "the profile dir should be deleted on Dispose");
        http.Stop();
        await server;
    }
}
