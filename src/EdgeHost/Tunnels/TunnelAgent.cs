using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Tunnels;

/// <summary>
/// The device's end of tunnels (docs/tunnels.md): for each stream the relay opens, connects to the
/// <c>expose</c> entry of that name and carries bytes both ways, half-closes included. A name that
/// is not listed is refused, whatever the relay asks: the device never connects anywhere else.
/// </summary>
public sealed partial class TunnelAgent
{
    private readonly Dictionary<string, (string Host, int Port, string Target)> _targets = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly Counter<long> _opened, _refused;
    private int _active;

    /// <summary>
    /// Where the device's own local page listens (loopback address and port), for the reserved tunnel name
    /// <see cref="ExposeConfig.DevicePage"/> (the relay's <c>/devices/ID/ui/</c>); null while it is not
    /// listening. Fixed by the host, never by configuration or by the relay.
    /// </summary>
    public Func<System.Net.IPEndPoint?>? PageEndPoint { get; init; }

    /// <summary>How long connecting to a target may take before the open is refused.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Creates the agent for the validated <c>expose</c> list.</summary>
    public TunnelAgent(IEnumerable<ExposeConfig> expose, Meter meter, ILogger<TunnelAgent> logger)
    {
        ArgumentNullException.ThrowIfNull(expose);
        ArgumentNullException.ThrowIfNull(meter);
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        foreach (var e in expose)
        {
            if (!ExposeConfig.TryParseTarget(e.Target, out var host, out var port, out var error))
                throw new ArgumentException($"expose \"{e.Name}\": {error}", nameof(expose));
            _targets[e.Name] = (host, port, e.Target);
        }
        _opened = meter.CreateCounter<long>("pinhole_tunnel_streams_total", description: "Tunnel streams the device connected to an exposed target.");
        _refused = meter.CreateCounter<long>("pinhole_tunnel_refused_total", description: "Tunnel opens the device refused (not exposed, or the target did not answer).");
        meter.CreateObservableGauge("pinhole_tunnel_streams_open", () => Active, description: "Tunnel streams open now.");
    }

    /// <summary>Tunnel streams carrying bytes now.</summary>
    public int Active => Volatile.Read(ref _active);

    /// <summary>The names the device exposes.</summary>
    public IReadOnlyCollection<string> Names => _targets.Keys;

    /// <summary>The <see cref="TunnelMux.Accepting"/> handler: never blocks (the uplink's receiving thread calls it).</summary>
    public void OnOpen(TunnelStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _ = Task.Run(() => RunAsync(stream));
    }

    private async Task RunAsync(TunnelStream stream)
    {
        using (stream)
        {
            (string Host, int Port, string Target) target;
            if (stream.Name == ExposeConfig.DevicePage)
            {
                // The device's own page: implicit, and only ever the page's own listener.
                if (PageEndPoint?.Invoke() is not { } page)
                {
                    _refused.Add(1);
                    stream.Refuse(TunnelResetCode.ConnectFailed, "the device's page is not listening");
                    return;
                }
                target = (page.Address.ToString(), page.Port, page.ToString());
            }
            else if (!_targets.TryGetValue(stream.Name, out target))
            {
                _refused.Add(1);
                NotExposed(_logger, stream.Name);
                stream.Refuse(TunnelResetCode.NotExposed, $"this device does not expose \"{stream.Name}\"");
                return;
            }
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var timeout = new CancellationTokenSource(ConnectTimeout);
                await socket.ConnectAsync(target.Host, target.Port, timeout.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ArgumentException)
            {
                _refused.Add(1);
                var why = e is OperationCanceledException ? $"no answer within {ConnectTimeout.TotalSeconds:0} s" : e.Message;
                ConnectFailed(_logger, stream.Name, target.Target, why);
                stream.Refuse(TunnelResetCode.ConnectFailed, $"cannot connect to {stream.Name} ({target.Target}): {why}");
                return;
            }
            _opened.Add(1);
            Interlocked.Increment(ref _active);
            try
            {
                stream.Accept();
                await TunnelBridge.RunAsync(socket, stream);
            }
            finally
            {
                Interlocked.Decrement(ref _active);
            }
        }
    }

    [LoggerMessage(1, LogLevel.Warning, "Tunnel to \"{Name}\" refused: it is not in expose")]
    private static partial void NotExposed(ILogger logger, string name);

    [LoggerMessage(2, LogLevel.Warning, "Tunnel to \"{Name}\" ({Target}) refused: {Reason}")]
    private static partial void ConnectFailed(ILogger logger, string name, string target, string reason);
}
