using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Pinhole.Relay.Tunnels;
using Pinhole.Relay.Web;
using Pinhole.Transport.Uplink;
using Yarp.ReverseProxy.Forwarder;

namespace Pinhole.Relay.Tests.Tunnels;

/// <summary>The path, Location and cookie rewriting of <c>/devices/ID/ui/</c> (docs/tunnels.md, "The device page").</summary>
public class DevicePageProxyTests
{
    [Fact]
    public void Device_cookies_are_renamed_and_scoped_under_the_prefix_without_a_domain()
    {
        Assert.Equal("ui_pinhole_session=abc; path=/devices/gw1/ui/; samesite=strict; httponly",
            DevicePageProxy.RewriteSetCookie("pinhole_session=abc; path=/; samesite=strict; httponly", "/devices/gw1/ui", https: false));
        Assert.Equal("ui_a=1; path=/devices/gw1/ui/sub; secure",
            DevicePageProxy.RewriteSetCookie("a=1; Domain=device.lan; Path=/sub", "/devices/gw1/ui", https: true));
        // No Path: the prefix itself (not the directory of whatever request set it).
        Assert.Equal("ui_a=1; path=/devices/gw1/ui/", DevicePageProxy.RewriteSetCookie("a=1", "/devices/gw1/ui", https: false));
        // A deletion (as the page's logout sends it) lands on the same cookie.
        Assert.StartsWith("ui_pinhole_session=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/devices/gw1/ui/",
            DevicePageProxy.RewriteSetCookie("pinhole_session=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/", "/devices/gw1/ui", https: false), StringComparison.Ordinal);
    }

    [Fact]
    public void Only_the_device_cookies_go_to_the_device_under_their_own_names()
    {
        // The relay's session has the same name as the device's: only the prefixed one may go through.
        Assert.Equal("pinhole_session=device-secret; x=y=z",
            DevicePageProxy.DeviceCookies(new StringValues(["pinhole_session=relay-secret; ui_pinhole_session=device-secret", "pinhole_device=d; ui_x=y=z; ui_=bad; ui_noequals"])));
        Assert.Equal("", DevicePageProxy.DeviceCookies(new StringValues("pinhole_session=relay-secret")));
        Assert.Equal("", DevicePageProxy.DeviceCookies(StringValues.Empty));
    }

    [Theory]
    [InlineData("/", "/devices/gw1/ui/")]
    [InlineData("/login?x=1", "/devices/gw1/ui/login?x=1")]
    [InlineData("http://relay.example:8080/api/status", "http://relay.example:8080/devices/gw1/ui/api/status")]
    [InlineData("https://elsewhere.example/", "https://elsewhere.example/")]
    [InlineData("//elsewhere.example/", "//elsewhere.example/")]
    [InlineData("relative", "relative")]
    public void Locations_point_under_the_prefix(string location, string expected)
    {
        var context = new DefaultHttpContext();
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("relay.example:8080");
        Assert.Equal(expected, new DevicePageProxy.PrefixTransformer("gw1").RewriteLocation(location, context.Request));
    }

    [Fact]
    public async Task The_request_loses_the_prefix_keeps_the_query_and_carries_no_relay_credentials()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Scheme = "https";
        context.Request.Host = new HostString("relay.example");
        context.Request.Path = "/devices/gw1/ui/api/status";
        context.Request.QueryString = new QueryString("?a=%20b");
        context.Request.Headers.Authorization = "Bearer relay-token";
        context.Request.Headers.Cookie = "pinhole_session=relay; ui_pinhole_session=device";
        context.Request.Headers["X-Forwarded-For"] = "6.6.6.6";
        context.Connection.RemoteIpAddress = System.Net.IPAddress.Parse("203.0.113.7");
        context.User = new System.Security.Claims.ClaimsPrincipal(new System.Security.Claims.ClaimsIdentity([new(System.Security.Claims.ClaimTypes.Name, "admin")], RelaySignIn.Scheme));
        using var proxied = new HttpRequestMessage();
        await new DevicePageProxy.PrefixTransformer("gw1").TransformRequestAsync(context, proxied, "http://device-page/", CancellationToken.None);

        Assert.Equal("http://device-page/api/status?a=%20b", proxied.RequestUri!.AbsoluteUri);
        Assert.Equal("relay.example", proxied.Headers.Host);
        Assert.False(proxied.Headers.Contains("Authorization"));
        Assert.Equal(["pinhole_session=device"], proxied.Headers.GetValues("Cookie"));
        Assert.Equal(["/devices/gw1/ui"], proxied.Headers.GetValues("X-Forwarded-Prefix"));
        Assert.Equal(["203.0.113.7"], proxied.Headers.GetValues("X-Forwarded-For"));
        Assert.Equal(["https"], proxied.Headers.GetValues("X-Forwarded-Proto"));
    }

    [Fact]
    public async Task The_bare_prefix_is_the_page_root()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("relay.example");
        context.Request.Path = "/devices/gw1/ui/";
        context.User = new System.Security.Claims.ClaimsPrincipal(new System.Security.Claims.ClaimsIdentity([new(System.Security.Claims.ClaimTypes.Name, "ci")], RelayAccess.ApiTokenScheme));
        using var proxied = new HttpRequestMessage();
        await new DevicePageProxy.PrefixTransformer("gw1").TransformRequestAsync(context, proxied, "http://device-page/", CancellationToken.None);
        Assert.Equal("http://device-page/", proxied.RequestUri!.AbsoluteUri);
        Assert.False(proxied.Headers.Contains("Cookie"));
    }

    [Fact]
    public void Failures_to_reach_the_page_are_told_apart()
    {
        static Exception Wrapped(Exception inner) => new HttpRequestException("connect failed", inner);
        var older = DevicePageProxy.Describe("gw1", ForwarderError.Request, Wrapped(new TunnelResetException(TunnelResetCode.NotExposed, "this device does not expose \"ui\"")));
        Assert.Equal(502, older.Status);
        Assert.Contains("older", older.Message, StringComparison.Ordinal);
        Assert.Equal(429, DevicePageProxy.Describe("gw1", ForwarderError.Request, Wrapped(new TunnelResetException(TunnelResetCode.Limit, "too many streams"))).Status);
        Assert.Equal(504, DevicePageProxy.Describe("gw1", ForwarderError.Request, Wrapped(new TunnelResetException(TunnelResetCode.Timeout, "no answer"))).Status);
        var notListening = DevicePageProxy.Describe("gw1", ForwarderError.Request, Wrapped(new TunnelResetException(TunnelResetCode.ConnectFailed, "the device's page is not listening")));
        Assert.Equal(502, notListening.Status);
        Assert.Contains("not listening", notListening.Message, StringComparison.Ordinal);
        Assert.Equal(503, DevicePageProxy.Describe("gw1", ForwarderError.Request, Wrapped(new DeviceOfflineException("device \"gw1\" is offline"))).Status);
        Assert.Equal(504, DevicePageProxy.Describe("gw1", ForwarderError.RequestTimedOut, null).Status);
        Assert.Equal(502, DevicePageProxy.Describe("gw1", ForwarderError.ResponseBodyDestination, null).Status);
    }
}
