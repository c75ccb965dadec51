using System.Globalization;
using System.Text.RegularExpressions;
using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

public class PeerProcessTests
{
    [Fact]
    public async Task Waits_for_the_ready_line_and_keeps_its_match()
    {
        await using var peer = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "echo starting; sleep 0.3; echo 'READY port=4321'; exec sleep 60")
        {
            ReadyLine = new Regex(@"READY port=(\d+)"),
        });
        Assert.Equal("4321", peer.ReadyMatch!.Groups[1].Value);
        Assert.False(peer.HasExited);
        Assert.Contains("starting", peer.Output);
    }

    [Fact]
    public async Task Readiness_timeout_kills_the_peer_and_shows_its_output()
    {
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<PeerProcessException>(() => PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "echo still-booting; echo to-stderr >&2; echo $$ > /dev/null; exec sleep 60")
        {
            Name = "slowpoke",
            ReadyLine = new Regex("never printed"),
            ReadyTimeout = TimeSpan.FromSeconds(1),
        }));
        Assert.Contains("slowpoke", e.Message);
        Assert.Contains("not ready within 1 s", e.Message);
        Assert.Contains("still-booting", e.Message);
        Assert.Contains("[err] to-stderr", e.Message);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task A_peer_that_exits_before_it_is_ready_fails_at_once_with_its_stderr()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<PeerProcessException>(() => PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "echo 'boom: bad config' >&2; exit 7")
        {
            ReadyLine = new Regex("READY"),
            ReadyTimeout = TimeSpan.FromSeconds(30),
        }));
        Assert.Contains("boom: bad config", e.Message);
        Assert.Contains("exited", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Waits_for_a_tcp_port_to_accept()
    {
        var port = FreePort.Get();
        // Listens only after a second, so a readiness check that did not wait would fail the connect below.
        var server = $"import socket,time; time.sleep(1); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(60)";
        await using var peer = await PeerProcess.StartAsync(new PeerStartInfo("/usr/bin/python3", "-c", server) { ReadyTcpPort = port });
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync("127.0.0.1", port);
        Assert.True(client.Connected);
    }

    [Fact]
    public async Task Dispose_kills_children_grandchildren_and_orphans()
    {
        // child: a direct child; grandchild: a child of a child; orphan: its parent exited, so it was
        // re-parented and only the process-group sweep can find it.
        const string Script = """
            sleep 300 & echo child=$!
            sh -c 'sleep 301 & echo grandchild=$!; wait' &
            (sleep 302 & echo orphan=$!)
            echo READY
            wait
            """;
        var peer = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", Script) { ReadyLine = new Regex("^READY") });
        var pids = new List<int> { peer.Id };
        foreach (var name in new[] { "child", "grandchild", "orphan" })
        {
            var m = await peer.WaitForLineAsync(new Regex($@"^{name}=(\d+)"), TimeSpan.FromSeconds(10));
            pids.Add(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        }
        Assert.All(pids, pid => Assert.True(IsAlive(pid), $"pid {pid} should run before Dispose\n{peer.Output}"));

        await peer.DisposeAsync();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (pids.Any(IsAlive) && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.All(pids, pid => Assert.False(IsAlive(pid), $"pid {pid} survived Dispose"));
    }

    [Fact]
    public async Task Stderr_lines_match_anchored_patterns_and_reach_the_line_callback()
    {
        var seen = new List<string>();
        await using var peer = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "echo 'listening on 5' >&2; exec sleep 60")
        {
            Name = "logger",
            ReadyLine = new Regex(@"^listening on (\d+)$"),
            OnOutputLine = line => { lock (seen) seen.Add(line); },
        });
        Assert.Equal("5", peer.ReadyMatch!.Groups[1].Value);
        Assert.Equal("[err] listening on 5", peer.Output);
        lock (seen)
            Assert.Equal(["[logger] [err] listening on 5"], seen);
    }

    [Fact]
    public async Task Keeps_only_the_latest_lines()
    {
        await using var peer = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; echo DONE; exec sleep 60")
        {
            ReadyLine = new Regex("^DONE$"),
            OutputLines = 100,
        });
        var lines = peer.Output.Split('\n');
        Assert.Equal(100, lines.Length);
        Assert.Equal("DONE", lines[^1]);
        Assert.Equal("line2901", lines[0]);
    }

    [Fact]
    public async Task StopAsync_lets_the_peer_handle_sigterm()
    {
        await using var peer = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "trap 'echo got-term; exit 3' TERM; echo READY; while true; do sleep 0.1; done")
        {
            ReadyLine = new Regex("^READY"),
        });
        var code = await peer.StopAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(3, code);
        Assert.True(peer.HasExited);
        Assert.Contains("got-term", peer.Output);
    }

    [Fact]
    public async Task Command_reports_exit_code_and_output_and_kills_on_timeout()
    {
        var ok = await Command.RunAsync("sh", "-c", "echo out; echo err >&2; exit 4");
        Assert.Equal(4, ok.ExitCode);
        Assert.Equal("out\n", ok.StandardOutput);
        Assert.Equal("err\n", ok.StandardError);
        Assert.False(ok.Succeeded);

        var slow = await Command.RunAsync("sleep", ["30"], TimeSpan.FromMilliseconds(300));
        Assert.True(slow.TimedOut);
        Assert.False(slow.Succeeded);
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
