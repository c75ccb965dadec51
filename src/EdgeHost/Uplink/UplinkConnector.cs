using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;
using Pinhole.Transport.Uplink;
using Pinhole.Transport.WebSockets;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>How one attempt on a relay went.</summary>
internal enum SessionOutcome
{
    /// <summary>No session (unreachable, timed out, broken answer): try the next relay.</summary>
    Failed,

    /// <summary>The relay refused this device (HTTP status or <see cref="Reject"/>): try the next relay.</summary>
    Refused,

    /// <summary>A session ran and ended (or the device is stopping).</summary>
    Ended,
}

/// <summary>
/// Opens one uplink to one relay: the connection (a WebSocket, or the HTTP fallback when something on the way strips
/// <c>Upgrade</c> or holds upgrades), then the hello/welcome handshake, all within the connect timeout.
/// </summary>
internal sealed class UplinkConnector(UplinkClientOptions options, UplinkClientMetrics metrics, TimeProvider time, ILogger logger)
{
    /// <summary>
    /// Connects and handshakes. On success returns the link and the open session (the caller owns the link); otherwise
    /// the outcome, already logged, and no link.
    /// </summary>
    public async Task<(SessionOutcome Outcome, UplinkClientConnection? Link, UplinkSession? Session)> ConnectAsync(
        Uri relay, UplinkCapabilities offered, IPipelineContext context, CancellationToken cancellationToken)
    {
        var connect = new UplinkConnectOptions
        {
            Headers =
            [
                new(UplinkProtocol.DeviceHeader, options.DeviceId),
                new("Authorization", "Bearer " + options.Token),
                new(UplinkProtocol.VersionHeader, UplinkSession.VersionHeaderValue),
            ],
            TrustedCa = options.TrustedCa,
            // Null means the environment: HTTPS_PROXY / HTTP_PROXY / NO_PROXY (wss goes through HTTPS_PROXY).
            Proxy = options.Proxy,
            ConnectTimeout = options.ConnectTimeout,
            Limits = options.Limits,
        };

        // The handshake's rules and, once welcomed, heartbeats and the dead link (shared with the relay).
        var protocol = new UplinkSession(UplinkRole.Device, options.ConnectTimeout, options.HeartbeatInterval, options.DeadLinkTimeout, time);
        UplinkClientConnection? link = null;
        try
        {
            using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connectTimeout.CancelAfter(options.ConnectTimeout);
            try
            {
                link = await ConnectLinkAsync(relay, connect, connectTimeout);
            }
            catch (UplinkHandshakeException e) when (e.StatusCode != 0)
            {
                var reason = e.Headers.TryGetValue(UplinkProtocol.RejectHeader, out var value) ? value : "no reason given";
                UplinkClientLog.Refused(logger, relay, $"HTTP {e.StatusCode} {reason}");
                context.SetStatus($"refused by {relay}: HTTP {e.StatusCode} {reason}");
                return (SessionOutcome.Refused, null, null);
            }

            // Hello and welcome are the first bytes either way: the hello fits any socket buffer, and
            // the welcome is read on a thread of its own (the connection's reads block).
            using var abortOnTimeout = connectTimeout.Token.UnsafeRegister(static l => ((UplinkClientConnection)l!).Abort(), link);
            link.Send(protocol.CreateHello(offered, options.Agent), connectTimeout.Token);
            var welcoming = Task.Factory.StartNew(link.Receive, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            UplinkMessage? answer;
            try
            {
                answer = await welcoming.WaitAsync(connectTimeout.Token);
            }
            catch (IOException) when (connectTimeout.IsCancellationRequested)
            {
                throw new OperationCanceledException(connectTimeout.Token);
            }
            var handshake = protocol.OnWelcome(answer);
            if (handshake.Welcome is not null)
            {
                abortOnTimeout.Dispose();
                var connected = link;
                link = null; // the caller's now
                return (SessionOutcome.Ended, connected, protocol);
            }
            if (handshake.Reject is { } reject)
            {
                UplinkClientLog.Refused(logger, relay, $"{reject.Reason.ToToken()}: {reject.Text}");
                context.SetStatus($"refused by {relay}: {reject.Reason.ToToken()}");
                return (SessionOutcome.Refused, null, null);
            }
            UplinkClientLog.ConnectFailed(logger, relay, handshake.Failure!);
            return (SessionOutcome.Failed, null, null);
        }
        catch (Exception e)
        {
            if (e is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested) protocol.HandshakeTimedOut();
            return (Classify(relay, e, protocol, cancellationToken), null, null);
        }
        finally
        {
            link?.Dispose();
        }
    }

    /// <summary>What an exception out of an attempt (connecting, or the session it ran) means for the reconnect loop; logs it.</summary>
    public SessionOutcome Classify(Uri relay, Exception e, UplinkSession? protocol, CancellationToken cancellationToken)
    {
        switch (e)
        {
            case OperationCanceledException or TimeoutException when !cancellationToken.IsCancellationRequested:
                // While handshaking the session says so itself ("no answer within the connect timeout").
                UplinkClientLog.ConnectFailed(logger, relay, protocol?.Phase != UplinkSessionPhase.Open && protocol?.EndReason is { } reason
                    ? reason : $"no answer within {options.ConnectTimeout.TotalSeconds:0.#} s");
                return SessionOutcome.Failed;
            case IOException or UplinkProtocolException or WebSocketFramingException
                or System.Security.Authentication.AuthenticationException or System.Net.Sockets.SocketException:
                UplinkClientLog.ConnectFailed(logger, relay, UplinkClient.Describe(e));
                return SessionOutcome.Failed;
            case OperationCanceledException:
                return SessionOutcome.Ended;
            default:
                if (cancellationToken.IsCancellationRequested) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                // Anything else (a proxy answering garbage, a platform TLS error type) is still just a
                // failed attempt: log it and try the next relay rather than take the pipeline down.
                UplinkClientLog.ConnectFailed(logger, relay, UplinkClient.Describe(e));
                return SessionOutcome.Failed;
        }
    }

    // A WebSocket first (unless config says http); when the upgrade is answered with anything but 101 and the answer
    // is not the relay's own refusal of this device, something between us stripped Upgrade: go over HTTP instead.
    // The same when the upgrade gets no answer at all within UpgradeTimeout (a middlebox that holds upgrades until its
    // own timeout): the HTTP attempt then gets a whole connect timeout of its own.
    private async Task<UplinkClientConnection> ConnectLinkAsync(Uri relay, UplinkConnectOptions connect, CancellationTokenSource connectTimeout)
    {
        var cancellationToken = connectTimeout.Token;
        if (options.Transport == UplinkTransportChoice.Http) return await UplinkClientConnection.ConnectHttpAsync(relay, connect, cancellationToken);
        try
        {
            var webSocket = options.Transport == UplinkTransportChoice.Auto && options.UpgradeTimeout < options.ConnectTimeout
                ? connect with { UpgradeTimeout = options.UpgradeTimeout }
                : connect;
            return await UplinkClientConnection.ConnectAsync(relay, webSocket, cancellationToken);
        }
        catch (UplinkHandshakeException e) when (options.Transport == UplinkTransportChoice.Auto && UpgradeBlocked(e))
        {
            UplinkClientLog.FallingBackToHttp(logger, relay, $"HTTP {e.StatusCode} {e.Message}".Trim());
            metrics.FellBackToHttp();
            return await UplinkClientConnection.ConnectHttpAsync(relay, connect, cancellationToken);
        }
        catch (UplinkUpgradeTimeoutException) when (options.Transport == UplinkTransportChoice.Auto && !cancellationToken.IsCancellationRequested)
        {
            UplinkClientLog.UpgradeHungFallingBackToHttp(logger, relay, options.UpgradeTimeout.TotalSeconds);
            metrics.FellBackToHttp();
            connectTimeout.CancelAfter(options.ConnectTimeout);
            return await UplinkClientConnection.ConnectHttpAsync(relay, connect, cancellationToken);
        }
    }

    /// <summary>
    /// True when an answer to the WebSocket upgrade says the upgrade did not get through (a proxy stripped
    /// <c>Upgrade</c>, or answered itself), rather than that the relay refused this device: no
    /// <c>Pinhole-Reject</c> header, or the relay's <c>bad-request</c> (it saw no upgrade).
    /// </summary>
    internal static bool UpgradeBlocked(UplinkHandshakeException e) =>
        e.StatusCode != 0 && (!e.Headers.TryGetValue(UplinkProtocol.RejectHeader, out var reject) || reject == UplinkReason.BadRequest.ToToken());
}
