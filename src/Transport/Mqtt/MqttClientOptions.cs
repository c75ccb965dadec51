using System.Security.Cryptography.X509Certificates;
using System.Text;
using Pinhole.Transport.Mqtt.Channels;

namespace Pinhole.Transport.Mqtt;

/// <summary>Everything <see cref="MqttClient.ConnectAsync"/> needs. Build it with <see cref="MqttClientOptionsBuilder"/>.</summary>
public sealed class MqttClientOptions
{
    /// <summary>TCP broker host (when <see cref="WebSocketUri"/> is null).</summary>
    public string? Host { get; set; }

    /// <summary>TCP broker port.</summary>
    public int Port { get; set; } = 1883;

    /// <summary>WebSocket broker URL (<c>ws://</c> or <c>wss://</c>); takes precedence over <see cref="Host"/>.</summary>
    public Uri? WebSocketUri { get; set; }

    /// <summary>TLS settings (TCP with TLS, or the pinned CA for <c>wss://</c>).</summary>
    public MqttClientTlsOptions Tls { get; set; } = new();

    /// <summary>Protocol version, MQTT 5.0 by default.</summary>
    public MqttProtocolVersion ProtocolVersion { get; set; } = MqttProtocolVersion.V500;

    /// <summary>Client identifier; empty lets a 5.0 broker assign one.</summary>
    public string ClientId { get; set; } = "";

    /// <summary>Clean Start (5.0) / Clean Session (3.1.1). False resumes the broker-side session.</summary>
    public bool CleanSession { get; set; } = true;

    /// <summary>5.0 Session Expiry Interval in seconds: how long the broker keeps the session after a disconnect (0: not at all; <see cref="uint.MaxValue"/>: forever).</summary>
    public uint SessionExpiryInterval { get; set; }

    /// <summary>Keep alive; zero turns it off. A PINGREQ goes out after half of it without traffic, and the connection is declared dead when nothing arrived for a whole period.</summary>
    public TimeSpan KeepAlivePeriod { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long to wait for CONNACK and for each acknowledgement after its request went out. With
    /// <see cref="AutoReconnect"/>, a QoS 1/2 publish does not time out while there is no connection: it is
    /// re-sent after the reconnect and this timeout starts again (bound the total with a cancellation token).
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>User name, or null.</summary>
    public string? Username { get; set; }

    /// <summary>Password, or null. Never logged.</summary>
    public byte[]? Password { get; set; }

    /// <summary>Last will, published by the broker when the connection ends without DISCONNECT; null for none.</summary>
    public MqttApplicationMessage? WillMessage { get; set; }

    /// <summary>5.0 Will Delay Interval in seconds.</summary>
    public uint? WillDelayInterval { get; set; }

    /// <summary>Largest packet the client accepts from the broker (announced in 5.0 CONNECT); bigger ones close the connection.</summary>
    public uint MaximumPacketSize { get; set; } = 1024 * 1024;

    /// <summary>5.0 Receive Maximum announced to the broker: QoS 1/2 messages it may send before we acknowledge.</summary>
    public ushort ReceiveMaximum { get; set; } = 100;

    /// <summary>Most QoS 1/2 publishes awaiting acknowledgement at once; the broker's Receive Maximum lowers it further.</summary>
    public int MaximumInflightPublishes { get; set; } = 1000;

    /// <summary>Most QoS 0 publishes queued in front of the socket before <see cref="MqttClient.PublishAsync"/> waits.</summary>
    public int MaximumPendingMessages { get; set; } = 1000;

    /// <summary>Reconnect by itself after the connection is lost (not after <see cref="MqttClient.DisconnectAsync"/>).</summary>
    public bool AutoReconnect { get; set; }

    /// <summary>First reconnect delay; it doubles per failed attempt up to <see cref="MaximumReconnectDelay"/>, with jitter.</summary>
    public TimeSpan MinimumReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Cap of the reconnect delay.</summary>
    public TimeSpan MaximumReconnectDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Creates the channel for these options (TCP, TLS or WebSocket).</summary>
    public IMqttChannel CreateChannel()
    {
        if (WebSocketUri is not null)
            return new MqttWebSocketChannel(WebSocketUri, Tls);
        if (Host is null)
            throw new InvalidOperationException("no broker set: call WithTcpServer or WithWebSocketServer");
        return new MqttTcpChannel(Host, Port, Tls);
    }

    /// <summary>Where the client connects, for logs.</summary>
    public string Endpoint => WebSocketUri is { } u ? $"{u.Scheme}://{u.Authority}{u.AbsolutePath}" : $"{(Tls.UseTls ? "mqtts" : "mqtt")}://{Host}:{Port}";
}

/// <summary>Builds <see cref="MqttClientOptions"/> (the shape of MQTTnet's builder).</summary>
public sealed class MqttClientOptionsBuilder
{
    private readonly MqttClientOptions _options = new();

    /// <summary>Connects over TCP.</summary>
    public MqttClientOptionsBuilder WithTcpServer(string host, int port = 1883)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        _options.Host = host;
        _options.Port = port;
        _options.WebSocketUri = null;
        return this;
    }

    /// <summary>Connects over WebSocket; <c>wss://</c> turns TLS on.</summary>
    public MqttClientOptionsBuilder WithWebSocketServer(string url)
    {
        ArgumentException.ThrowIfNullOrEmpty(url);
        var uri = new Uri(url);
        if (uri.Scheme is not ("ws" or "wss"))
            throw new ArgumentException($"expected a ws:// or wss:// URL, got {uri.Scheme}://", nameof(url));
        _options.WebSocketUri = uri;
        _options.Tls.UseTls = uri.Scheme == "wss";
        return this;
    }

    /// <summary>Turns TLS on (for TCP; <c>wss://</c> turns it on by itself).</summary>
    public MqttClientOptionsBuilder WithTls(bool useTls = true)
    {
        _options.Tls.UseTls = useTls;
        return this;
    }

    /// <summary>Adjusts the TLS settings.</summary>
    public MqttClientOptionsBuilder WithTls(Action<MqttClientTlsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        _options.Tls.UseTls = true;
        configure(_options.Tls);
        return this;
    }

    /// <summary>Pins a private CA (a PEM or DER file): only chains ending in it are trusted.</summary>
    public MqttClientOptionsBuilder WithTrustedCa(string path)
    {
        _options.Tls.TrustedCa = MqttClientTlsOptions.LoadTrustedCa(path);
        return this;
    }

    /// <summary>Pins a private CA: only chains ending in it are trusted.</summary>
    public MqttClientOptionsBuilder WithTrustedCa(X509Certificate2 certificate)
    {
        _options.Tls.TrustedCa = certificate;
        return this;
    }

    /// <summary>Sets user name and password.</summary>
    public MqttClientOptionsBuilder WithCredentials(string username, string? password = null)
    {
        _options.Username = username;
        _options.Password = password is null ? null : Encoding.UTF8.GetBytes(password);
        return this;
    }

    /// <summary>Sets user name and binary password.</summary>
    public MqttClientOptionsBuilder WithCredentials(string username, byte[]? password)
    {
        _options.Username = username;
        _options.Password = password;
        return this;
    }

    /// <summary>Sets the client identifier.</summary>
    public MqttClientOptionsBuilder WithClientId(string clientId)
    {
        _options.ClientId = clientId;
        return this;
    }

    /// <summary>Clean Start (5.0) / Clean Session (3.1.1).</summary>
    public MqttClientOptionsBuilder WithCleanStart(bool cleanStart = true)
    {
        _options.CleanSession = cleanStart;
        return this;
    }

    /// <summary>Same as <see cref="WithCleanStart"/>, under its MQTT 3.1.1 name.</summary>
    public MqttClientOptionsBuilder WithCleanSession(bool cleanSession = true) => WithCleanStart(cleanSession);

    /// <summary>5.0 Session Expiry Interval in seconds.</summary>
    public MqttClientOptionsBuilder WithSessionExpiryInterval(uint seconds)
    {
        _options.SessionExpiryInterval = seconds;
        return this;
    }

    /// <summary>Keep alive period (whole seconds on the wire; zero turns keep alive off).</summary>
    public MqttClientOptionsBuilder WithKeepAlivePeriod(TimeSpan period)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(period, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(period, TimeSpan.FromSeconds(ushort.MaxValue));
        _options.KeepAlivePeriod = period;
        return this;
    }

    /// <summary>Sets the last will (topic, payload, QoS, retain, 5.0 properties) and an optional 5.0 will delay.</summary>
    public MqttClientOptionsBuilder WithWillMessage(MqttApplicationMessage will, uint? delayIntervalSeconds = null)
    {
        ArgumentNullException.ThrowIfNull(will);
        _options.WillMessage = will;
        _options.WillDelayInterval = delayIntervalSeconds;
        return this;
    }

    /// <summary>Selects MQTT 3.1.1 or 5.0.</summary>
    public MqttClientOptionsBuilder WithProtocolVersion(MqttProtocolVersion version)
    {
        if (version is not (MqttProtocolVersion.V311 or MqttProtocolVersion.V500))
            throw new ArgumentOutOfRangeException(nameof(version), version, "only MQTT 3.1.1 and 5.0 are supported");
        _options.ProtocolVersion = version;
        return this;
    }

    /// <summary>How long to wait for CONNACK and for each acknowledgement.</summary>
    public MqttClientOptionsBuilder WithTimeout(TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _options.Timeout = timeout;
        return this;
    }

    /// <summary>Reconnects by itself after a lost connection, with capped, jittered exponential backoff.</summary>
    public MqttClientOptionsBuilder WithAutoReconnect(bool enabled = true, TimeSpan? minimumDelay = null, TimeSpan? maximumDelay = null)
    {
        _options.AutoReconnect = enabled;
        if (minimumDelay is { } min)
            _options.MinimumReconnectDelay = min;
        if (maximumDelay is { } max)
            _options.MaximumReconnectDelay = max;
        return this;
    }

    /// <summary>Largest packet accepted from the broker.</summary>
    public MqttClientOptionsBuilder WithMaximumPacketSize(uint bytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 16u);
        _options.MaximumPacketSize = bytes;
        return this;
    }

    /// <summary>5.0 Receive Maximum announced to the broker.</summary>
    public MqttClientOptionsBuilder WithReceiveMaximum(ushort value)
    {
        ArgumentOutOfRangeException.ThrowIfZero(value);
        _options.ReceiveMaximum = value;
        return this;
    }

    /// <summary>Most QoS 1/2 publishes awaiting acknowledgement at once.</summary>
    public MqttClientOptionsBuilder WithMaximumInflightPublishes(int value)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value, ushort.MaxValue);
        _options.MaximumInflightPublishes = value;
        return this;
    }

    /// <summary>Returns the options.</summary>
    public MqttClientOptions Build()
    {
        if (_options.Host is null && _options.WebSocketUri is null)
            throw new InvalidOperationException("no broker set: call WithTcpServer or WithWebSocketServer");
        if (_options.ProtocolVersion == MqttProtocolVersion.V311 && _options.ClientId.Length == 0 && !_options.CleanSession)
            throw new InvalidOperationException("MQTT 3.1.1 needs a client id for a persistent session [MQTT-3.1.3-7]");
        return _options;
    }
}
