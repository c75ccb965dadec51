using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.EdgeHost.Telemetry.Outbox;

namespace Pinhole.EdgeHost.Tests.Telemetry;

// The relay's history puts a reading where its "ts" says: a reading sent again after a restart (the
// outbox reopened by a new process) must carry the time it was taken, to the millisecond, never the
// time of the resend.
public sealed class ResendTimestampTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("outbox-ts-");

    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task A_reading_resent_from_a_reopened_outbox_has_byte_identical_payload_with_the_original_ts()
    {
        var taken = new DateTimeOffset(2026, 11, 21, 12, 0, 0, 123, TimeSpan.Zero);
        byte[] first;
        await using (var outbox = TelemetryOutbox.Open(_dir.FullName))
        {
            await outbox.AppendAsync("cpu_temp", new SensorReading(23.4, "°C", taken));
            first = TelemetryPayloads.Reading(Assert.Single(outbox.GetPending(0, 10)));
        }
        await Task.Delay(50);
        await using var reopened = TelemetryOutbox.Open(_dir.FullName);
        var again = Assert.Single(reopened.GetPending(0, 10));
        Assert.Equal(taken, again.Timestamp);
        Assert.Equal(first, TelemetryPayloads.Reading(again));
        Assert.Contains("\"ts\": \"2026-11-21T12:00:00.123Z\"", System.Text.Encoding.UTF8.GetString(first), StringComparison.Ordinal);
    }
}
