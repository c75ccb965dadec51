using Pinhole.EdgeHost.Uplink;
using Pinhole.Testing.Time;
using Pinhole.Transport.Sockets;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Tests.Uplink;

public class TunnelBudgetTests
{
    private static readonly TimeSpan MinRtt = TimeSpan.FromMilliseconds(1);

    private static TcpQueueInfo Socket(long outstanding, long kernelRate, long acked) => new(outstanding, MinRtt, kernelRate) { BytesAcked = acked };

    [Fact]
    public void Before_the_socket_was_seen_delivering_only_the_floor_goes_in_the_smallest_messages()
    {
        var time = new ManualTimeProvider();
        time.Advance(TimeSpan.FromSeconds(1));
        var budget = new TunnelBudget(time);
        // The kernel claims 10 MB/s (app-limited video bursts through a token bucket): not trusted yet.
        Assert.False(budget.HeldBack(Socket(10_000, 10_000_000, 0), out _));
        Assert.True(budget.HeldBack(Socket(TunnelBudget.MinBudgetBytes, 10_000_000, 0), out var poll));
        Assert.InRange(poll, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(20));
        Assert.Equal(TunnelMessageSize.MinBytes, budget.MessageBytes(Socket(0, 10_000_000, 0)));
    }

    [Fact]
    public void A_slow_link_keeps_the_budget_and_messages_at_what_it_delivers_whatever_the_kernel_claims()
    {
        var time = new ManualTimeProvider();
        time.Advance(TimeSpan.FromSeconds(1));
        var budget = new TunnelBudget(time);
        // The socket stays full (the link is the limit); the kernel claims 10 MB/s.
        budget.HeldBack(Socket(20_000, 10_000_000, 0), out _);
        // 6 Mbit/s: 37,500 bytes acknowledged in 50 ms.
        time.Advance(TimeSpan.FromMilliseconds(50));
        budget.HeldBack(Socket(20_000, 10_000_000, 37_500), out _);
        Assert.Equal(750_000, budget.DeliveredBytesPerSecond);
        Assert.Equal(9_000, budget.MessageBytes(Socket(0, 10_000_000, 37_500)));
        // 750 kB/s × 16 ms is below the floor: 16 KiB.
        Assert.True(budget.HeldBack(Socket(TunnelBudget.MinBudgetBytes, 10_000_000, 37_500), out _));
        // The link got slower: a window it limited lowers the rate.
        time.Advance(TimeSpan.FromMilliseconds(50));
        budget.HeldBack(Socket(20_000, 10_000_000, 37_500 + 25_000), out _);
        Assert.Equal(500_000, budget.DeliveredBytesPerSecond);
        Assert.Equal(6_000, budget.MessageBytes(Socket(0, 10_000_000, 62_500)));
        // The kernel's own estimate wins when it is lower.
        Assert.Equal(TunnelMessageSize.MinBytes, budget.MessageBytes(Socket(0, 200_000, 62_500)));
    }

    [Fact]
    public void A_fast_link_grows_the_budget_with_what_it_delivers()
    {
        var time = new ManualTimeProvider();
        time.Advance(TimeSpan.FromSeconds(1));
        var budget = new TunnelBudget(time);
        long acked = 0;
        budget.HeldBack(Socket(0, 2_000_000_000, acked), out _);
        // Each 50 ms the link delivers what the budget let through, refilled at every wake-up.
        var sizes = new List<long>();
        for (var i = 0; i < 6; i++)
        {
            // The socket drains empty between wake-ups (the sender is the limit), which come only every 4 ms (a loaded
            // machine): it still grows.
            var allowed = Math.Max(TunnelBudget.MinBudgetBytes, (long)(budget.DeliveredBytesPerSecond * TunnelBudget.SenderLimitedGrowth * 0.016));
            acked += allowed * 50 / 4;
            time.Advance(TimeSpan.FromMilliseconds(50));
            budget.HeldBack(Socket(0, 2_000_000_000, acked), out _);
            sizes.Add(budget.DeliveredBytesPerSecond);
        }
        Assert.True(sizes.Zip(sizes.Skip(1)).All(p => p.Second > p.First), string.Join(" ", sizes));
        Assert.True(sizes[^1] > 1_000_000_000, string.Join(" ", sizes));
        Assert.False(budget.HeldBack(Socket(4 << 20, 2_000_000_000, acked), out _)); // megabytes may be outstanding
        Assert.Equal(UplinkProtocol.MaxTunnelDataBytes, budget.MessageBytes(Socket(0, 2_000_000_000, acked)));
    }

    [Fact]
    public void An_idle_gap_starts_a_new_window_and_keeps_the_rate()
    {
        var time = new ManualTimeProvider();
        time.Advance(TimeSpan.FromSeconds(1));
        var budget = new TunnelBudget(time);
        budget.HeldBack(Socket(0, 10_000_000, 0), out _);
        time.Advance(TimeSpan.FromMilliseconds(100));
        budget.HeldBack(Socket(0, 10_000_000, 100_000), out _);
        Assert.Equal(1_000_000, budget.DeliveredBytesPerSecond);
        time.Advance(TimeSpan.FromSeconds(5)); // nothing sent meanwhile: no sample of 0
        budget.HeldBack(Socket(0, 10_000_000, 100_000), out _);
        Assert.Equal(1_000_000, budget.DeliveredBytesPerSecond);
    }
}
