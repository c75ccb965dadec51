using Pinhole.EdgeHost.Uplink;

namespace Pinhole.EdgeHost.Tests.Uplink;

public sealed class UplinkBackoffTests
{
    private static readonly TimeSpan Initial = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 2)]
    [InlineData(3, 8)]
    [InlineData(6, 60)] // 64 s capped at 60
    [InlineData(1000, 60)] // no overflow however many failures
    public void Delay_is_between_half_and_all_of_the_capped_doubling(int failures, double ceilingSeconds)
    {
        for (var i = 0; i < 200; i++)
        {
            var delay = UplinkBackoff.Delay(failures, Initial, Max);
            Assert.InRange(delay.TotalSeconds, ceilingSeconds / 2, ceilingSeconds);
        }
    }

    [Fact]
    public void Delay_is_jittered()
    {
        var delays = Enumerable.Range(0, 50).Select(_ => UplinkBackoff.Delay(5, Initial, Max)).Distinct().Count();
        Assert.True(delays > 40, $"only {delays} distinct delays of 50");
    }
}
