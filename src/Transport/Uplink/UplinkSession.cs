namespace Pinhole.Transport.Uplink;

/// <summary>Which end of the uplink an <see cref="UplinkSession"/> is: the device sends the hello, the relay answers it.</summary>
public enum UplinkRole
{
    /// <summary>The edge device: sends <see cref="Hello"/>, expects <see cref="Welcome"/>.</summary>
    Device,

    /// <summary>The relay: expects <see cref="Hello"/>, answers <see cref="Welcome"/> or <see cref="Reject"/>.</summary>
    Relay,
}

/// <summary>Where an <see cref="UplinkSession"/> is in its life.</summary>
public enum UplinkSessionPhase
{
    /// <summary>Hello and welcome not yet exchanged; the handshake timeout runs.</summary>
    Handshaking,

    /// <summary>Welcomed: heartbeats and dead-link detection run.</summary>
    Open,

    /// <summary>An end was decided (goodbye, close, dead link, error); the connection is being taken down.</summary>
    Closing,

    /// <summary>The connection is gone.</summary>
    Closed,
}

/// <summary>What a handshake message meant: go on (<see cref="Hello"/> or <see cref="Welcome"/> set), a refusal, or a failure.</summary>
/// <param name="Hello">On the relay: the device's acceptable hello.</param>
/// <param name="Welcome">On the device: the relay's welcome (the session is open).</param>
/// <param name="Reject">A refusal: on the relay, the one to send; on the device, the relay's.</param>
/// <param name="Failure">Why the handshake failed otherwise (the peer closed, or sent something else).</param>
public readonly record struct UplinkHandshake(Hello? Hello, Welcome? Welcome, Reject? Reject, string? Failure)
{
    /// <summary>True when the handshake may go on (a hello on the relay, a welcome on the device).</summary>
    public bool Succeeded => Hello is not null || Welcome is not null;
}

/// <summary>What one <see cref="UplinkSession.Tick"/> asks of the connection.</summary>
/// <param name="Ping">A heartbeat to send now, or null.</param>
/// <param name="DeadLink">Set when the link is to be abandoned: why (no welcome in time, or nothing received for too long).</param>
public readonly record struct UplinkTick(Ping? Ping, string? DeadLink);

/// <summary>
/// The uplink session's rules, shared by both ends and free of I/O (docs/uplink-protocol.md §2, §5): the hello/welcome
/// handshake with its version check and timeout, heartbeats while open, "nothing received for the dead-link timeout
/// means the link is dead", and the first reason a session ended. The caller owns the connection: it passes in what it
/// received, calls <see cref="Tick"/> about every <see cref="TickInterval"/>, and sends what the session hands back.
/// </summary>
/// <remarks>
/// Thread-safe for one reader (calling <see cref="OnReceived"/>) and one ticker on another thread; the phase and
/// end reason may be set from anywhere.
/// </remarks>
public sealed class UplinkSession
{
    private readonly TimeProvider _time;
    private readonly long _createdAt;
    private long _lastReceived, _lastPing;
    private long _rttMicros = -1;
    private int _phase, _deadLinkDeclared;
    private string? _endReason;
    private Welcome? _welcome;
    private TimeSpan _heartbeat;

    /// <summary>Creates a session in <see cref="UplinkSessionPhase.Handshaking"/>; the handshake timeout runs from now.</summary>
    /// <param name="role">Which end this is.</param>
    /// <param name="handshakeTimeout">How long the handshake may take (the relay: for the hello; the device: for the whole connect and welcome).</param>
    /// <param name="heartbeatInterval">This end's heartbeat; once open, the shorter of it and the welcome's.</param>
    /// <param name="deadLinkTimeout">Nothing received for this long means the link is dead.</param>
    /// <param name="time">The clock.</param>
    public UplinkSession(UplinkRole role, TimeSpan handshakeTimeout, TimeSpan heartbeatInterval, TimeSpan deadLinkTimeout, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(handshakeTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(heartbeatInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(deadLinkTimeout, TimeSpan.Zero);
        Role = role;
        HandshakeTimeout = handshakeTimeout;
        DeadLinkTimeout = deadLinkTimeout;
        _heartbeat = heartbeatInterval;
        _time = time ?? TimeProvider.System;
        _createdAt = _lastReceived = _lastPing = _time.GetTimestamp();
    }

    /// <summary>Which end this is.</summary>
    public UplinkRole Role { get; }

    /// <summary>How long the handshake may take.</summary>
    public TimeSpan HandshakeTimeout { get; }

    /// <summary>Nothing received for this long means the link is dead.</summary>
    public TimeSpan DeadLinkTimeout { get; }

    /// <summary>How often a ping goes out while open: this end's interval, once open the shorter of it and the welcome's.</summary>
    public TimeSpan HeartbeatInterval => _heartbeat;

    /// <summary>
    /// How often to call <see cref="Tick"/>: a quarter of the shorter of heartbeat and dead-link timeout, between 10 ms
    /// and 1 s. The dead-link verdict comes one tick early, so detection never takes longer than <see cref="DeadLinkTimeout"/>.
    /// </summary>
    public TimeSpan TickInterval =>
        TimeSpan.FromMilliseconds(Math.Clamp(Math.Min(_heartbeat.TotalMilliseconds, DeadLinkTimeout.TotalMilliseconds) / 4, 10, 1000));

    /// <summary>Where the session is.</summary>
    public UplinkSessionPhase Phase => (UplinkSessionPhase)Volatile.Read(ref _phase);

    /// <summary>The welcome both ends agreed on; null before the session opened.</summary>
    public Welcome? Welcome => Volatile.Read(ref _welcome);

    /// <summary>Round-trip time from the latest pong, or null before the first.</summary>
    public TimeSpan? RoundTripTime { get { var v = Interlocked.Read(ref _rttMicros); return v < 0 ? null : TimeSpan.FromMicroseconds(v); } }

    /// <summary>Why the session ended: the first reason given (to <see cref="Close"/>, or found by the session itself); null while it lives.</summary>
    public string? EndReason => Volatile.Read(ref _endReason);

    /// <summary>Time since anything was last received (since the session opened, before that).</summary>
    public TimeSpan Silence => _time.GetElapsedTime(Volatile.Read(ref _lastReceived));

    /// <summary>What the other end is called in end reasons.</summary>
    private string Peer => Role == UplinkRole.Device ? "relay" : "device";

    /// <summary>The value of <see cref="UplinkProtocol.VersionHeader"/> a device sends: the versions it speaks.</summary>
    public static string VersionHeaderValue => UplinkProtocol.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True when a <see cref="UplinkProtocol.VersionHeader"/> value (comma-separated versions) offers <see cref="UplinkProtocol.Version"/>.</summary>
    public static bool OffersOurVersion(string header)
    {
        ArgumentNullException.ThrowIfNull(header);
        foreach (var part in header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            if (ushort.TryParse(part, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) && v == UplinkProtocol.Version)
                return true;
        return false;
    }

    /// <summary>The device's hello: the one version this code speaks, and what it offers.</summary>
    public Hello CreateHello(UplinkCapabilities offered, string agent)
    {
        RequireRole(UplinkRole.Device);
        return new Hello(UplinkProtocol.Version, UplinkProtocol.Version, offered, agent);
    }

    /// <summary>
    /// The relay's check of the device's first message: a hello whose version range holds ours goes on; another version
    /// range or another message gets a <see cref="Reject"/> to send; the peer closing is a failure. A refusal or failure
    /// ends the session.
    /// </summary>
    public UplinkHandshake OnHello(UplinkMessage? first)
    {
        RequireRole(UplinkRole.Relay);
        RequirePhase(UplinkSessionPhase.Handshaking);
        switch (first)
        {
            case null:
                Close("closed before hello");
                return new UplinkHandshake(null, null, null, EndReason);
            case Hello hello when hello.MinVersion <= UplinkProtocol.Version && UplinkProtocol.Version <= hello.MaxVersion:
                return new UplinkHandshake(hello, null, null, null);
            case Hello hello:
                return Refuse(new Reject(UplinkReason.UnsupportedVersion,
                    $"device speaks protocol versions {hello.MinVersion}-{hello.MaxVersion}; this relay speaks {UplinkProtocol.Version}"));
            default:
                return Refuse(new Reject(UplinkReason.ProtocolError, $"expected hello, got {first.GetType().Name}"));
        }
    }

    /// <summary>The relay's welcome for the capabilities both ends confirmed, with this end's heartbeat. Open the session
    /// with <see cref="Open"/> once it is sent and the session is ready to receive.</summary>
    public Welcome CreateWelcome(UplinkCapabilities confirmed, TimeSpan ackInterval, int maxMessageBytes)
    {
        RequireRole(UplinkRole.Relay);
        return new Welcome(UplinkProtocol.Version, confirmed, _heartbeat, ackInterval, maxMessageBytes);
    }

    /// <summary>
    /// The device's check of the relay's answer to its hello: a welcome in our version opens the session; a reject is
    /// the relay's refusal; anything else (or the connection closing) is a failure. A refusal or failure ends the session.
    /// </summary>
    public UplinkHandshake OnWelcome(UplinkMessage? answer)
    {
        RequireRole(UplinkRole.Device);
        RequirePhase(UplinkSessionPhase.Handshaking);
        switch (answer)
        {
            case Welcome welcome when welcome.Version == UplinkProtocol.Version:
                Open(welcome);
                return new UplinkHandshake(null, welcome, null, null);
            case Welcome welcome:
                Close($"the relay welcomed with protocol version {welcome.Version}; this device speaks {UplinkProtocol.Version}");
                return new UplinkHandshake(null, null, null, EndReason);
            case Reject reject:
                Close($"refused: {reject.Reason.ToToken()}: {reject.Text}");
                return new UplinkHandshake(null, null, reject, null);
            default:
                Close($"expected welcome, got {answer?.GetType().Name ?? "close"}");
                return new UplinkHandshake(null, null, null, EndReason);
        }
    }

    /// <summary>
    /// Opens the session with the agreed welcome: the heartbeat becomes the shorter of this end's and the welcome's, and
    /// the heartbeat and dead-link clocks start now.
    /// </summary>
    public void Open(Welcome welcome)
    {
        ArgumentNullException.ThrowIfNull(welcome);
        RequirePhase(UplinkSessionPhase.Handshaking);
        if (welcome.HeartbeatInterval > TimeSpan.Zero && welcome.HeartbeatInterval < _heartbeat) _heartbeat = welcome.HeartbeatInterval;
        var now = _time.GetTimestamp();
        Volatile.Write(ref _lastReceived, now);
        Volatile.Write(ref _lastPing, now);
        Volatile.Write(ref _welcome, welcome);
        Interlocked.CompareExchange(ref _phase, (int)UplinkSessionPhase.Open, (int)UplinkSessionPhase.Handshaking);
    }

    /// <summary>The handshake took longer than <see cref="HandshakeTimeout"/>: ends the session. On the relay, returns
    /// the reject to send (<see cref="UplinkReason.Timeout"/>); on the device, null (there is no one to tell).</summary>
    public Reject? HandshakeTimedOut()
    {
        var seconds = HandshakeTimeout.TotalSeconds.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture);
        if (Role == UplinkRole.Relay)
            return Refuse(new Reject(UplinkReason.Timeout, $"no hello within {seconds} s")).Reject;
        Close($"no answer within {seconds} s");
        return null;
    }

    /// <summary>
    /// Takes one message received while open (null: the peer closed the connection). Anything received proves the link
    /// alive. Returns the reply to send, if any: a <see cref="Pong"/> to a <see cref="Ping"/>. A <see cref="Pong"/> sets
    /// <see cref="RoundTripTime"/>; a <see cref="Goodbye"/> or the close ends the session.
    /// </summary>
    public UplinkMessage? OnReceived(UplinkMessage? message)
    {
        Volatile.Write(ref _lastReceived, _time.GetTimestamp());
        switch (message)
        {
            case null:
                Close($"{Peer} closed the connection");
                return null;
            case Ping ping:
                return new Pong(ping.Timestamp);
            case Pong pong:
                // The timestamp is the peer's echo of ours: one from the future (or garbage) must not underflow the
                // unsigned subtraction into a huge round trip; an hour is more than any link takes.
                var now = NowMicros();
                var micros = pong.Timestamp <= now ? Math.Min(now - pong.Timestamp, (ulong)TimeSpan.FromHours(1).TotalMicroseconds) : 0;
                Interlocked.Exchange(ref _rttMicros, (long)micros);
                return null;
            case Goodbye bye:
                Close($"{Peer} said goodbye: {bye.Reason.ToToken()}: {bye.Text}");
                return null;
            default:
                return null;
        }
    }

    /// <summary>
    /// The periodic check, about every <see cref="TickInterval"/>: while handshaking, whether the handshake timed out;
    /// while open, whether the link is dead (nothing received for <see cref="DeadLinkTimeout"/>, one tick early) and
    /// whether a heartbeat is due. A dead link ends the session.
    /// </summary>
    public UplinkTick Tick()
    {
        switch (Phase)
        {
            case UplinkSessionPhase.Handshaking:
                if (_time.GetElapsedTime(_createdAt) < HandshakeTimeout) return default;
                HandshakeTimedOut();
                return new UplinkTick(null, EndReason);
            case UplinkSessionPhase.Open or UplinkSessionPhase.Closing:
                if (CheckDeadLink() is { } dead) return new UplinkTick(null, dead);
                return new UplinkTick(TakeDuePing(), null);
            default:
                return default;
        }
    }

    /// <summary>The dead-link half of <see cref="Tick"/>, for an end that watches the link apart from its senders (a send
    /// stuck on a dead connection must not delay detection): the reason when the link is dead, once; else null. It holds
    /// while closing too, so a peer that said goodbye and then went silent is still abandoned. The reason becomes the end
    /// reason unless one was given before.</summary>
    public string? CheckDeadLink()
    {
        if (Phase is not (UplinkSessionPhase.Open or UplinkSessionPhase.Closing) || Volatile.Read(ref _deadLinkDeclared) != 0) return null;
        var silence = Silence;
        // One tick early, so detection never takes longer than DeadLinkTimeout.
        if (silence + TickInterval <= DeadLinkTimeout) return null;
        if (Interlocked.Exchange(ref _deadLinkDeclared, 1) != 0) return null;
        var reason = $"dead link: nothing received for {silence.TotalSeconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)} s";
        Close(reason);
        return reason;
    }

    /// <summary>The heartbeat half of <see cref="Tick"/>: a ping when one is due (a heartbeat interval after the last), else null.</summary>
    public Ping? TakeDuePing()
    {
        if (Phase != UplinkSessionPhase.Open) return null;
        var now = _time.GetTimestamp();
        if (_time.GetElapsedTime(Volatile.Read(ref _lastPing), now) < _heartbeat) return null;
        Volatile.Write(ref _lastPing, now);
        return new Ping(NowMicros());
    }

    /// <summary>Decides the session's end: moves to <see cref="UplinkSessionPhase.Closing"/> and keeps <paramref name="reason"/>
    /// unless a reason was given before (the first cause is the cause). True when this call gave the reason.</summary>
    public bool Close(string reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        int phase;
        do
        {
            phase = Volatile.Read(ref _phase);
            if (phase >= (int)UplinkSessionPhase.Closing) break;
        }
        while (Interlocked.CompareExchange(ref _phase, (int)UplinkSessionPhase.Closing, phase) != phase);
        return Interlocked.CompareExchange(ref _endReason, reason, null) is null;
    }

    /// <summary>The connection is gone: <see cref="UplinkSessionPhase.Closed"/>, with <paramref name="reason"/> as the end
    /// reason if none was given before.</summary>
    public void Closed(string reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        Interlocked.CompareExchange(ref _endReason, reason, null);
        Volatile.Write(ref _phase, (int)UplinkSessionPhase.Closed);
    }

    /// <summary>This end's clock in microseconds, as ping and frame timestamps carry it.</summary>
    public ulong NowMicros() => (ulong)(_time.GetTimestamp() * (1_000_000.0 / _time.TimestampFrequency));

    private UplinkHandshake Refuse(Reject reject)
    {
        Close($"rejected: {reject.Reason.ToToken()}: {reject.Text}");
        return new UplinkHandshake(null, null, reject, null);
    }

    private void RequireRole(UplinkRole role)
    {
        if (Role != role) throw new InvalidOperationException($"only the {role.ToString().ToLowerInvariant()} end does this");
    }

    private void RequirePhase(UplinkSessionPhase phase)
    {
        if (Phase != phase) throw new InvalidOperationException($"the session is {Phase}, not {phase}");
    }
}
