using System.Globalization;
using System.Text.RegularExpressions;
using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

/// <summary>
/// A test process that ends without disposing its peers must not leave them running. The probe
/// (ExitProbe/Program.cs) starts a peer with a child and then ends in the way under test.
/// </summary>
public class ExitCleanupTests
{
    private static readonly string Probe = Path.Combine(AppContext.BaseDirectory, "Pinhole.Harness.ExitProbe.dll");

    [Theory]
    [InlineData("exit")]
    [InlineData("crash")]
    public async Task Peers_die_when_the_test_process_exits_or_crashes(string how)
    {
        var run = await Command.RunAsync("dotnet", [Probe, how], TimeSpan.FromSeconds(60));
        var (peer, child) = ParsePids(run.StandardOutput, run.ToString());
        if (how == "crash")
            Assert.Contains("simulated crash", run.StandardError);

        await AssertDeadAsync(run.ToString(), peer, child);
    }

    [Fact]
    public async Task Peers_die_when_the_test_process_gets_sigterm()
    {
        await using var probe = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", Probe, "wait") { ReadyLine = new Regex(@"^peer=\d+ child=\d+") });
        var (peer, child) = ParsePids(probe.ReadyMatch!.Value, probe.Output);
        Assert.True(IsAlive(peer) && IsAlive(child), probe.Output);

        // The peer has a process group of its own, so SIGTERM to the probe's group reaches only the probe.
        await probe.StopAsync(TimeSpan.FromSeconds(10));

        await AssertDeadAsync(probe.Output, peer, child);
    }

    [Fact]
    public async Task Peers_of_a_test_process_killed_outright_are_swept_by_the_next_run()
    {
        var probe = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", Probe, "wait") { ReadyLine = new Regex(@"^peer=\d+ child=\d+") });
        var (peer, child) = ParsePids(probe.ReadyMatch!.Value, probe.Output);

        // SIGKILL to the probe alone: no handler runs, its peer is orphaned.
        Assert.True((await Command.RunAsync("kill", "-KILL", probe.Id.ToString(CultureInfo.InvariantCulture))).Succeeded);
        await probe.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(300);
        Assert.True(IsAlive(peer) && IsAlive(child), "the orphaned peer should still run before the sweep");

        Assert.True(PeerProcess.KillOrphansOfDeadTestRuns() >= 1);
        await AssertDeadAsync(probe.Output, peer, child);
        await probe.DisposeAsync();
    }

    private static (int Peer, int Child) ParsePids(string text, string context)
    {
        var m = Regex.Match(text, @"peer=(\d+) child=(\d+)");
        Assert.True(m.Success, context);
        return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    private static async Task AssertDeadAsync(string context, params int[] pids)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (pids.Any(IsAlive) && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.All(pids, pid => Assert.False(IsAlive(pid), $"pid {pid} survived\n{context}"));
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
