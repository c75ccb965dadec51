using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry;

namespace Pinhole.EdgeHost.Tests.Telemetry;

internal sealed class RecordingContext : IPipelineContext
{
    private int _heartbeats;
    public int Heartbeats => Volatile.Read(ref _heartbeats);
    public ConcurrentQueue<string> Statuses { get; } = new();
    public void Heartbeat() => Interlocked.Increment(ref _heartbeats);
    public void SetStatus(string status) => Statuses.Enqueue(status);
}

internal sealed class ListLogger : ILogger, ILoggerProvider, ILoggerFactory
{
    public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Enqueue((logLevel, formatter(state, exception)));
    public ILogger CreateLogger(string categoryName) => this;
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }
}

/// <summary>A broker in memory: records what each connection published, acknowledges on command.</summary>
internal sealed class FakeConnector : ITelemetryMqttConnector
{
    public ConcurrentQueue<FakeConnection> Connections { get; } = new();
    public ConcurrentQueue<(string Topic, string Payload, bool Retain)> Published { get; } = new();
    public TelemetryConnectOptions? LastOptions { get; private set; }
    public volatile bool Refuse;
    /// <summary>When set, returns whether a publish of this topic fails (as a PUBACK with an error reason code would).</summary>
    public Func<string, string, bool>? FailPublish;
    /// <summary>Like <see cref="FailPublish"/>, given also the publishing connection's number (1 for the first).</summary>
    public Func<int, string, string, bool>? FailPublishOn;
    /// <summary>The reason code of a failed publish: quota exceeded (transient) unless set.</summary>
    public byte FailReasonCode = 0x97;

    public Task<ITelemetryMqttConnection> ConnectAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken)
    {
        LastOptions = options;
        if (Refuse) throw new IOException("connection refused");
        var c = new FakeConnection(this, onMessage, Connections.Count + 1);
        Connections.Enqueue(c);
        return Task.FromResult<ITelemetryMqttConnection>(c);
    }

    public FakeConnection Current => Connections.Last();
}

internal sealed class FakeConnection(FakeConnector owner, Func<TelemetryInboundMessage, Task> onMessage, int number) : ITelemetryMqttConnection
{
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public ConcurrentQueue<string> Subscriptions { get; } = new();
    public bool CleanlyDisconnected { get; private set; }

    public Task Closed => _closed.Task;

    public void Drop() => _closed.TrySetResult();

    public Task Deliver(string topic, string payload) => onMessage(new TelemetryInboundMessage(topic, Encoding.UTF8.GetBytes(payload)));

    public async Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, bool retain, CancellationToken cancellationToken)
    {
        // Recorded synchronously, in call order, as a client writes PUBLISH packets to its socket;
        // the acknowledgement comes back asynchronously.
        if (_closed.Task.IsCompleted) throw new IOException("not connected");
        var text = Encoding.UTF8.GetString(payload.Span);
        var fail = owner.FailPublish?.Invoke(topic, text) == true || owner.FailPublishOn?.Invoke(number, topic, text) == true;
        if (!fail) owner.Published.Enqueue((topic, text, retain));
        await Task.Yield();
        if (fail) throw new PublishRefusedException(topic, owner.FailReasonCode, null);
    }

    public Task SubscribeAsync(string topic, CancellationToken cancellationToken)
    {
        Subscriptions.Enqueue(topic);
        return Task.CompletedTask;
    }

    public Task DisconnectAsync(CancellationToken cancellationToken)
    {
        CleanlyDisconnected = true;
        _closed.TrySetResult();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _closed.TrySetResult();
        return ValueTask.CompletedTask;
    }
}

internal static class Eventually
{
    public static async Task True(Func<bool> condition, string what, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }
}
