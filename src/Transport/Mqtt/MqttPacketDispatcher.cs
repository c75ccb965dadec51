using Pinhole.Transport.Mqtt.Packets;

namespace Pinhole.Transport.Mqtt;

/// <summary>
/// Matches acknowledgements to the requests that wait for them, by packet type and packet identifier
/// (MQTTnet's packet dispatcher). The waiting side applies its own timeout through a <see cref="TimeProvider"/>.
/// </summary>
internal sealed class MqttPacketDispatcher
{
    private readonly Dictionary<(MqttControlPacketType Type, ushort Id), TaskCompletionSource<MqttPacket>> _waiters = [];
    private readonly Lock _lock = new();

    /// <summary>
    /// Registers interest in the next <paramref name="responseType"/> with <paramref name="packetIdentifier"/>.
    /// Identifier 0 (PINGRESP) is shared: concurrent pings wait for the same answer.
    /// </summary>
    public Task<MqttPacket> AddAwaitable(MqttControlPacketType responseType, ushort packetIdentifier)
    {
        lock (_lock)
        {
            if (_waiters.TryGetValue((responseType, packetIdentifier), out var existing))
            {
                if (packetIdentifier == 0)
                    return existing.Task;
                throw new InvalidOperationException($"already waiting for {responseType} {packetIdentifier}");
            }

            var tcs = new TaskCompletionSource<MqttPacket>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((responseType, packetIdentifier), tcs);
            return tcs.Task;
        }
    }

    /// <summary>Completes the waiter of an acknowledgement; false when nobody waited for it.</summary>
    public bool TryDispatch(MqttPacket packet)
    {
        var id = packet is IMqttPacketWithIdentifier withId ? withId.PacketIdentifier : (ushort)0;
        TaskCompletionSource<MqttPacket>? tcs;
        lock (_lock)
        {
            if (!_waiters.Remove((packet.Type, id), out tcs))
                return false;
        }

        return tcs.TrySetResult(packet);
    }

    /// <summary>Fails the waiter of one request (for example when its packet could not be encoded).</summary>
    public void Fail(MqttControlPacketType responseType, ushort packetIdentifier, Exception exception)
    {
        TaskCompletionSource<MqttPacket>? tcs;
        lock (_lock)
        {
            _waiters.Remove((responseType, packetIdentifier), out tcs);
        }

        tcs?.TrySetException(exception);
    }

    /// <summary>Forgets a waiter that gave up (timeout or cancellation).</summary>
    public void Remove(MqttControlPacketType responseType, ushort packetIdentifier)
    {
        lock (_lock)
        {
            _waiters.Remove((responseType, packetIdentifier));
        }
    }

    /// <summary>Whether anyone waits for this acknowledgement.</summary>
    public bool IsWaiting(MqttControlPacketType responseType, ushort packetIdentifier)
    {
        lock (_lock)
        {
            return _waiters.ContainsKey((responseType, packetIdentifier));
        }
    }

    /// <summary>Fails every waiter whose response type <paramref name="which"/> selects.</summary>
    public void FailAll(Exception exception, Func<MqttControlPacketType, bool> which)
    {
        List<TaskCompletionSource<MqttPacket>> failed = [];
        lock (_lock)
        {
            foreach (var key in _waiters.Keys.Where(k => which(k.Type)).ToList())
            {
                failed.Add(_waiters[key]);
                _waiters.Remove(key);
            }
        }

        foreach (var tcs in failed)
            tcs.TrySetException(exception);
    }
}

/// <summary>
/// How many QoS 1/2 publishes may await acknowledgement at once: the smaller of the client's limit and the
/// broker's Receive Maximum (MQTT 5.0 section 4.9, flow control). Waiters are served in order.
/// </summary>
internal sealed class MqttSendQuota
{
    private readonly Queue<TaskCompletionSource> _waiters = new();
    private readonly Lock _lock = new();
    private int _limit;
    private int _used;

    public MqttSendQuota(int limit) => _limit = limit;

    public int InUse
    {
        get
        {
            lock (_lock)
                return _used;
        }
    }

    public async ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource tcs;
        lock (_lock)
        {
            if (_used < _limit && _waiters.Count == 0)
            {
                _used++;
                return;
            }

            tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Enqueue(tcs);
        }

        try
        {
            await tcs.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // If the slot was handed over just as we gave up, give it back.
            if (!tcs.TrySetCanceled(cancellationToken))
                Release();
            throw;
        }
    }

    public void Release()
    {
        lock (_lock)
        {
            _used--;
            GrantWaiters();
        }
    }

    public void SetLimit(int limit)
    {
        lock (_lock)
        {
            _limit = Math.Max(1, limit);
            GrantWaiters();
        }
    }

    private void GrantWaiters()
    {
        while (_used < _limit && _waiters.TryDequeue(out var next))
        {
            if (next.TrySetResult())
                _used++;
        }
    }
}
