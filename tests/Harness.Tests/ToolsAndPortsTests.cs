using System.Net;
using System.Net.Sockets;
using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

public class ToolsAndPortsTests
{
    [Fact]
    public void Finds_a_program_that_exists_and_not_one_that_does_not()
    {
        Assert.True(Tools.Exists("sh"));
        Assert.StartsWith("/", Tools.Find("sh"));
        Assert.False(Tools.Exists("pinhole-no-such-program"));
        Assert.Null(Tools.SkipReason("sh"));
        var reason = Tools.SkipReason("sh", "pinhole-no-such-program");
        Assert.NotNull(reason);
        Assert.Contains("pinhole-no-such-program", reason);
        Assert.DoesNotContain("sh,", reason);
    }

    [Fact]
    public void Requiring_a_missing_program_says_which()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Tools.Require("pinhole-no-such-program"));
        Assert.Contains("pinhole-no-such-program", e.Message);
    }

    [Fact]
    public void Free_tcp_port_can_be_listened_on()
    {
        var port = FreePort.Get();
        Assert.InRange(port, 1024, 65535);
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        listener.Stop();
    }

    [Fact]
    public void Free_udp_port_can_be_bound()
    {
        var port = FreePort.GetUdp();
        Assert.InRange(port, 1024, 65535);
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, port));
        Assert.Equal(port, ((IPEndPoint)udp.Client.LocalEndPoint!).Port);
    }

    [Fact]
    public void Free_tcp_and_udp_port_is_free_for_both()
    {
        var port = FreePort.GetTcpAndUdp();
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, port));
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        listener.Stop();
    }

    [Fact]
    public void Artifacts_folder_is_at_the_repository_root()
    {
        Assert.True(File.Exists(Path.Combine(RepoPaths.Root, "build.sh")), RepoPaths.Root);
        Assert.Equal(Path.Combine(RepoPaths.Root, "test-artifacts"), RepoPaths.Artifacts);
        Assert.True(Directory.Exists(RepoPaths.Artifacts));
        Assert.Equal(Path.Combine(RepoPaths.Artifacts, "a_b_c.png"), RepoPaths.ArtifactPath("a/b c.png"));
    }
}
