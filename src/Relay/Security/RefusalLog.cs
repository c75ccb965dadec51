using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Pinhole.Transport.Metrics;

namespace Pinhole.Relay.Security;

/// <summary>
/// Where every limit that refuses a client reports: each refusal counts in
/// <c>pinhole_relay_refusals_total{cause}</c>, but the log gets one Warning per cause and client
/// address per <see cref="LogInterval"/>, so a flood of attempts cannot flood the journal.
/// </summary>
public sealed partial class RefusalLog : Pinhole.Streaming.Rtsp.IRtspRefusals
{
    /// <summary>How long a (cause, address) pair stays quiet after it was logged.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromHours(1);

    private const int MaxRemembered = 10_000;
    private readonly ConcurrentDictionary<(string Cause, string Address), long> _lastLogged = new();
    private readonly ConcurrentDictionary<string, StrongBox<long>> _counts = new(StringComparer.Ordinal);
    private readonly ObservedSeries _refusals;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Creates the log.</summary>
    public RefusalLog(Meter meter, TimeProvider time, ILogger<RefusalLog>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(meter);
        _refusals = ObservedSeries.Counter(meter, "pinhole_relay_refusals_total", "Clients, requests and devices refused by a limit or throttle.");
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _logger = (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    /// <summary>Counts one refusal and logs it when this cause and address were not logged within the interval.</summary>
    /// <param name="cause">A short token, also the metric label: <c>rtsp-connections-per-address</c>, <c>login-throttled</c>, …</param>
    /// <param name="address">The client address (or device id) refused.</param>
    /// <param name="detail">One line for the operator; never a secret.</param>
    public void Refused(string cause, string? address, string detail)
    {
        var count = _counts.GetOrAdd(cause, c =>
        {
            var box = new StrongBox<long>();
            _refusals.Set(() => Interlocked.Read(ref box.Value), ("cause", c));
            return box;
        });
        Interlocked.Increment(ref count.Value);
        address ??= "unknown";
        var now = _time.GetTimestamp();
        var key = (cause, address);
        if (_lastLogged.TryGetValue(key, out var last) && _time.GetElapsedTime(last, now) < LogInterval) return;
        if (_lastLogged.Count >= MaxRemembered) Forget(now);
        _lastLogged[key] = now;
        LogRefused(_logger, cause, address, detail);
    }

    /// <summary>Refusals counted for <paramref name="cause"/> so far.</summary>
    public long Count(string cause) => _counts.TryGetValue(cause, out var c) ? Interlocked.Read(ref c.Value) : 0;

    private void Forget(long now)
    {
        foreach (var (key, at) in _lastLogged)
            if (_time.GetElapsedTime(at, now) >= LogInterval) _lastLogged.TryRemove(key, out _);
        // Still full (a flood from many addresses): start over rather than grow; the counters keep counting.
        if (_lastLogged.Count >= MaxRemembered) _lastLogged.Clear();
    }

    [LoggerMessage(1, LogLevel.Warning, "refused {Cause} from {Address}: {Detail} (logged once an hour per cause and address; pinhole_relay_refusals_total counts every one)")]
    private static partial void LogRefused(ILogger logger, string cause, string address, string detail);
}
