using System.Buffers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// <see cref="ITelemetryMqttConnector"/> over MQTTnet: one client per connection, a persistent session
/// (clean start false, with a session expiry on MQTT 5.0) and a retained last will, over
/// <c>ws://</c>, <c>wss://</c>, <c>mqtt://</c> or <c>mqtts://</c>. What is ours stays above it: the
/// session reconnects with backoff and drains the disk outbox, so a lost connection only fails the
/// in-flight publishes and their readings stay on disk.
/// <para>
/// Dead-broker detection is ours too. MQTTnet pings only after a whole keep-alive period of silence
/// and then waits its communication timeout, which can add up to twice the keep alive. Here a ping
/// goes out every half keep alive and must be answered within the next half, so a broker that stops
/// answering (a frozen process, a NAT that forgot us) is found within one keep alive of its last
/// answer, within the 1.5 keep alives MQTT allows the broker itself (MQTT 5.0 section 3.1.2.10).
/// </para>
/// </summary>
internal sealed partial class MqttNetConnector(ILoggerFactory loggerFactory, TimeProvider time) : ITelemetryMqttConnector
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<MqttNetConnector>();

    public async Task<ITelemetryMqttConnection> ConnectAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var connection = new Connection(client, options.KeepAlive, time, _logger);
        client.DisconnectedAsync += e =>
        {
            connection.MarkClosed(e.Exception);
            return Task.CompletedTask;
        };
        client.ApplicationMessageReceivedAsync += e =>
            onMessage(new TelemetryInboundMessage(e.ApplicationMessage.Topic, e.ApplicationMessage.Payload.ToArray()));
        try
        {
            await client.ConnectAsync(BuildOptions(options), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            client.Dispose();
            throw;
        }
        connection.StartPinging();
        return connection;
    }

    /// <summary>The MQTTnet client options for <paramref name="options"/> (separate so tests can check them).</summary>
    internal static MqttClientOptions BuildOptions(TelemetryConnectOptions options)
    {
        var v5 = options.ProtocolVersion == TelemetryProtocolVersion.V500;
        var builder = new MqttClientOptionsBuilder()
            .WithClientId(options.ClientId)
            .WithProtocolVersion(v5 ? MqttProtocolVersion.V500 : MqttProtocolVersion.V311)
            .WithKeepAlivePeriod(options.KeepAlive)
            // Every request (CONNECT, SUBSCRIBE, each PUBLISH) gets at most this long for its answer.
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithWillTopic(options.WillTopic)
            .WithWillPayload(options.WillPayload)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithWillRetain();
        if (v5)
            builder.WithCleanStart(false).WithSessionExpiryInterval((uint)Math.Clamp(options.SessionExpiry.TotalSeconds, 0, uint.MaxValue));
        else
            builder.WithCleanSession(false); // 3.1.1: the broker keeps the session until we connect clean

        var url = options.Url;
        var secure = url.Scheme is "wss" or "mqtts";
        switch (url.Scheme)
        {
            case "ws" or "wss":
                builder.WithWebSocketServer(o => o.WithUri(url.ToString()));
                break;
            case "mqtts":
                builder.WithTcpServer(url.Host, url.IsDefaultPort || url.Port < 0 ? 8883 : url.Port);
                break;
            default: // mqtt://, tcp://
                builder.WithTcpServer(url.Host, url.IsDefaultPort || url.Port < 0 ? 1883 : url.Port);
                break;
        }
        if (secure)
        {
            var pinned = options.TrustedCaPath is { } path ? LoadCertificate(path) : null;
            builder.WithTlsOptions(tls =>
            {
                tls.UseTls().WithTargetHost(url.DnsSafeHost);
                if (pinned is not null)
                    tls.WithCertificateValidationHandler(e => IsSignedByPinnedCa(pinned, e.Certificate, e.Chain, e.SslPolicyErrors));
            });
        }
        if (options.Username is { } user)
            builder.WithCredentials(user, options.Password);
        return builder.Build();
    }

    /// <summary>Loads a PEM (or DER) CA certificate: edge.json <c>trustedCa</c>.</summary>
    internal static X509Certificate2 LoadCertificate(string path)
    {
        var text = File.ReadAllText(path);
        return text.Contains("-----BEGIN", StringComparison.Ordinal)
            ? X509Certificate2.CreateFromPem(text)
            : X509CertificateLoader.LoadCertificateFromFile(path);
    }

    /// <summary>
    /// The pinned-CA rule, the same as the uplink's: the broker's chain must end in <paramref name="ca"/>
    /// and nothing else (<see cref="X509ChainTrustMode.CustomRootTrust"/>), and the host name must still match.
    /// </summary>
    internal static bool IsSignedByPinnedCa(X509Certificate2 ca, X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors)
    {
        if (certificate is null)
            return false;
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
            return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // a private CA rarely publishes revocation lists
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
        }
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "MQTT broker did not answer a ping within {Timeout}: closing the connection")]
    private static partial void LogPingTimeout(ILogger logger, TimeSpan timeout);

    private sealed class Connection(IMqttClient client, TimeSpan keepAlive, TimeProvider time, ILogger logger) : ITelemetryMqttConnection
    {
        private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _stop = new();
        private Task _pinging = Task.CompletedTask;

        public Task Closed => _closed.Task;

        public void MarkClosed(Exception? reason)
        {
            _ = reason;
            _closed.TrySetResult();
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Disposed already: nothing left to stop.
            }
        }

        public void StartPinging()
        {
            if (keepAlive > TimeSpan.Zero)
                _pinging = PingLoopAsync(_stop.Token);
        }

        private async Task PingLoopAsync(CancellationToken cancellationToken)
        {
            var half = keepAlive / 2;
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await Task.Delay(half, time, cancellationToken).ConfigureAwait(false);
                    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    deadline.CancelAfter(half);
                    try
                    {
                        await client.PingAsync(deadline.Token).ConfigureAwait(false);
                    }
                    catch (Exception) when (!cancellationToken.IsCancellationRequested)
                    {
                        LogPingTimeout(logger, half);
                        // Closing the client fails every request waiting on it, so the outbox keeps their readings.
                        client.Dispose();
                        _closed.TrySetResult();
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, bool retain, CancellationToken cancellationToken)
        {
            var message = new MqttApplicationMessageBuilder()
                .WithTopic(topic)
                .WithPayload(new ReadOnlySequence<byte>(payload)) // no copy: the caller leaves the bytes as they are until this publish completes
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .WithRetainFlag(retain)
                .Build();
            var result = await client.PublishAsync(message, cancellationToken).ConfigureAwait(false);
            // 0x10 "no matching subscribers" is a success (< 0x80): the broker took the message.
            if ((int)result.ReasonCode >= 0x80)
                throw new PublishRefusedException(topic, (byte)result.ReasonCode, result.ReasonString);
        }

        public async Task SubscribeAsync(string topic, CancellationToken cancellationToken)
        {
            var options = new MqttClientSubscribeOptionsBuilder()
                .WithTopicFilter(f => f.WithTopic(topic).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce))
                .Build();
            var result = await client.SubscribeAsync(options, cancellationToken).ConfigureAwait(false);
            if (result.Items.FirstOrDefault(i => (int)i.ResultCode >= 0x80) is { } refused)
                throw new IOException($"the broker refused the subscription to {topic}: {refused.ResultCode}");
        }

        public Task DisconnectAsync(CancellationToken cancellationToken) =>
            client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), cancellationToken);

        public async ValueTask DisposeAsync()
        {
            _closed.TrySetResult();
            await _stop.CancelAsync().ConfigureAwait(false);
            await _pinging.ConfigureAwait(false);
            client.Dispose();
            _stop.Dispose();
        }
    }
}
