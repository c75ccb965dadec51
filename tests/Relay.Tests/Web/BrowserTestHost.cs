using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pinhole.Relay.Configuration;
using Pinhole.Streaming;
using Pinhole.Relay.Viewers;
using Pinhole.Relay.Web;

namespace Pinhole.Relay.Tests.Web;

/// <summary>
/// A minimal relay web host with only the browser endpoints, on a free loopback port; the test feeds
/// its <see cref="Registry"/>. Viewer <c>alice</c> / <c>secret</c>.
/// </summary>
internal sealed class BrowserTestHost : IAsyncDisposable
{
    public const string User = "alice";
    public const string Password = "secret";

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<HttpContext, byte> _playerSockets = new();

    private BrowserTestHost(WebApplication app, MediaStreamRegistry registry, Uri baseUri, ConcurrentDictionary<HttpContext, byte> playerSockets)
    {
        _app = app;
        _playerSockets = playerSockets;
        Registry = registry;
        BaseUri = baseUri;
    }

    public MediaStreamRegistry Registry { get; }

    public IServiceProvider Services => _app.Services;

    public Uri BaseUri { get; }

    public string Origin => BaseUri.GetLeftPart(UriPartial.Authority);

    public Uri WebSocketUri(string device, string camera) =>
        new($"{(BaseUri.Scheme == "https" ? "wss" : "ws")}://{BaseUri.Authority}/play/{device}/{camera}/ws");

    public static async Task<BrowserTestHost> StartAsync(Action<BrowserViewingOptions>? configure = null, TimeProvider? time = null, bool https = false,
        Action<IServiceCollection>? services = null, MediaStreamLimits? limits = null)
    {
        var registry = new MediaStreamRegistry(limits);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, l => { if (https) l.UseHttps(SelfSignedCertificate()); }));
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(registry);
        builder.Services.AddSingleton(new ViewerDirectory([new ViewerConfig { User = User, Password = Password }]));
        if (time is not null) builder.Services.AddSingleton(time);
        services?.Invoke(builder.Services);
        builder.Services.AddBrowserViewing(configure);
        var app = builder.Build();
        // Remembers player sockets so a test can cut them like a network drop would.
        var sockets = new ConcurrentDictionary<HttpContext, byte>();
        app.Use(async (context, next) =>
        {
            if (!context.Request.Path.Value!.EndsWith("/ws", StringComparison.Ordinal))
            {
                await next(context);
                return;
            }
            sockets[context] = 0;
            try
            {
                await next(context);
            }
            finally
            {
                sockets.TryRemove(context, out _);
            }
        });
        app.MapBrowserViewing();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new BrowserTestHost(app, registry, new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/"), sockets);
    }

    /// <summary>Cuts every open player WebSocket (the TCP connection is reset); returns how many.</summary>
    public int AbortPlayerSockets()
    {
        var n = 0;
        foreach (var context in _playerSockets.Keys)
        {
            context.Abort();
            n++;
        }
        return n;
    }

    /// <summary>An HttpClient that keeps cookies but does not follow redirects (tests look at them).</summary>
    public HttpClient CreateClient(CookieContainer? cookies = null) =>
        new(new HttpClientHandler
        {
            AllowAutoRedirect = false,
            CookieContainer = cookies ?? new CookieContainer(),
            UseCookies = true,
            ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator,
        }) { BaseAddress = BaseUri };

    /// <summary>Logs in through the form and returns the cookies holding the session.</summary>
    public async Task<CookieContainer> LogInAsync()
    {
        var cookies = new CookieContainer();
        using var client = CreateClient(cookies);
        using var r = await client.PostAsync("/login", new FormUrlEncodedContent([new("user", User), new("password", Password)]));
        if (r.StatusCode != HttpStatusCode.Redirect) throw new InvalidOperationException($"login failed: {r.StatusCode}");
        return cookies;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static X509Certificate2 SelfSignedCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx), null);
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
