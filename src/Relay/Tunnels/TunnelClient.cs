using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;

namespace Pinhole.Relay.Tunnels;

/// <summary>How <see cref="TunnelClient"/> reaches and authenticates to the relay.</summary>
/// <param name="Relay">The relay's base URL (<c>https://relay.example.com</c>).</param>
/// <param name="Token">An API token (<c>pinhole-relay tokens add NAME</c>), or null.</param>
/// <param name="User">An admin's user name (with <paramref name="Password"/>), or null.</param>
/// <param name="Password">The admin's password.</param>
/// <param name="TimeLimit">Ask the relay to end each connection after this long, or null.</param>
public sealed record TunnelClientOptions(Uri Relay, string? Token, string? User, string? Password, TimeSpan? TimeLimit);

/// <summary>
/// <c>pinhole-relay tunnel ID NAME --listen HOST:PORT</c>: listens locally and forwards every accepted
/// TCP connection through the relay's <c>/devices/ID/tunnels/NAME</c> WebSocket, half-closes included.
/// </summary>
public sealed class TunnelClient(TunnelClientOptions options, string device, string name, TextWriter log)
{
    private const int BufferSize = 64 * 1024;
    private CookieContainer? _cookies;

    /// <summary>The tunnel WebSocket URL.</summary>
    public Uri Endpoint
    {
        get
        {
            var b = new UriBuilder(options.Relay) { Scheme = options.Relay.Scheme == "https" ? "wss" : "ws" };
            b.Path = $"{b.Path.TrimEnd('/')}/devices/{Uri.EscapeDataString(device)}/tunnels/{Uri.EscapeDataString(name)}";
            if (options.TimeLimit is { } limit) b.Query = "limit=" + ((long)Math.Ceiling(limit.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            return b.Uri;
        }
    }

    /// <summary>Logs in when a user is given (the session cookie is then used for every connection).</summary>
    /// <exception cref="InvalidOperationException">The login was refused.</exception>
    public async Task LoginAsync(CancellationToken cancellationToken)
    {
        if (options.User is null) return;
        _cookies = new CookieContainer();
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = _cookies }) { BaseAddress = options.Relay };
        using var response = await http.PostAsync(new Uri("/login", UriKind.Relative),
            new FormUrlEncodedContent([new("user", options.User), new("password", options.Password ?? "")]), cancellationToken);
        if (_cookies.GetCookies(options.Relay).Count == 0)
            throw new InvalidOperationException($"login as {options.User} refused by {options.Relay} (HTTP {(int)response.StatusCode})");
    }

    /// <summary>Connects one tunnel WebSocket.</summary>
    /// <exception cref="InvalidOperationException">The relay refused, with its reason.</exception>
    public async Task<ClientWebSocket> ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.KeepAliveInterval = TimeSpan.FromSeconds(15);
        if (options.Token is not null) socket.Options.SetRequestHeader("Authorization", "Bearer " + options.Token);
        if (_cookies is not null) socket.Options.Cookies = _cookies;
        try
        {
            await socket.ConnectAsync(Endpoint, cancellationToken);
            return socket;
        }
        catch (WebSocketException e)
        {
            var status = (int)socket.HttpStatusCode;
            var reason = socket.HttpResponseHeaders?.TryGetValue(TunnelEndpoint.ErrorHeader, out var values) == true ? string.Join(" ", values) : Describe(e);
            socket.Dispose();
            throw new InvalidOperationException(status == 0 ? $"cannot reach {options.Relay}: {reason}" : $"relay refused the tunnel (HTTP {status}): {reason}", e);
        }
    }

    /// <summary>Listens on <paramref name="listen"/> and forwards connections until cancelled.</summary>
    /// <param name="listen">Where to listen.</param>
    /// <param name="bound">Called with the bound address (port 0 picks one).</param>
    /// <param name="cancellationToken">Stops listening and ends open connections.</param>
    public async Task RunAsync(IPEndPoint listen, Action<IPEndPoint> bound, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(bound);
        using var listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(listen);
        listener.Listen(128);
        bound((IPEndPoint)listener.LocalEndPoint!);
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                var client = await listener.AcceptAsync(cancellationToken);
                client.NoDelay = true;
                connections.RemoveAll(t => t.IsCompleted);
                connections.Add(Task.Run(() => ForwardAsync(client, cancellationToken), CancellationToken.None));
            }
        }
        catch (OperationCanceledException)
        {
        }
        await Task.WhenAll(connections);
    }

    private async Task ForwardAsync(Socket client, CancellationToken cancellationToken)
    {
        using (client)
        {
            ClientWebSocket socket;
            try
            {
                socket = await ConnectAsync(cancellationToken);
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
            {
                await log.WriteLineAsync($"pinhole-relay tunnel: {e.Message}");
                client.LingerState = new LingerOption(true, 0); // the local client sees a reset, not a clean end
                return;
            }
            using (socket)
            {
                var up = Task.Run(async () =>
                {
                    var buffer = new byte[BufferSize];
                    try
                    {
                        while (true)
                        {
                            var n = await client.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                            if (n == 0)
                            {
                                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "end of stream", cancellationToken);
                                return;
                            }
                            await socket.SendAsync(buffer.AsMemory(0, n), WebSocketMessageType.Binary, true, cancellationToken);
                        }
                    }
                    catch (Exception e) when (e is SocketException or WebSocketException or OperationCanceledException or ObjectDisposedException)
                    {
                        socket.Abort();
                    }
                }, CancellationToken.None);
                var down = Task.Run(async () =>
                {
                    var buffer = new byte[BufferSize];
                    try
                    {
                        while (true)
                        {
                            var r = await socket.ReceiveAsync(buffer, cancellationToken);
                            if (r.MessageType == WebSocketMessageType.Close)
                            {
                                if (socket.CloseStatus != WebSocketCloseStatus.NormalClosure)
                                {
                                    await log.WriteLineAsync($"pinhole-relay tunnel: {device}/{name} ended: {socket.CloseStatusDescription}");
                                    Reset(client);
                                    return;
                                }
                                client.Shutdown(SocketShutdown.Send);
                                return;
                            }
                            var sent = 0;
                            while (sent < r.Count) sent += await client.SendAsync(buffer.AsMemory(sent, r.Count - sent), SocketFlags.None, cancellationToken);
                        }
                    }
                    catch (Exception e) when (e is SocketException or WebSocketException or OperationCanceledException or ObjectDisposedException)
                    {
                        Reset(client);
                    }
                }, CancellationToken.None);
                await Task.WhenAll(up, down);
            }
        }
    }

    private static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x is not null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(": ", parts.Distinct());
    }

    private static void Reset(Socket client)
    {
        try
        {
            client.LingerState = new LingerOption(true, 0);
            client.Close();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
