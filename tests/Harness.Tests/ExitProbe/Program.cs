using System.Text.RegularExpressions;
using Pinhole.Testing;

// Starts a peer with a child, prints both pids, then ends the way the first argument says
// without disposing the peer: "exit" returns, "crash" throws, "wait" blocks until killed.
var peer = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", "sleep 600 & echo child=$!; echo READY; wait")
{
    ReadyLine = new Regex("^READY"),
});
var child = (await peer.WaitForLineAsync(new Regex(@"^child=(\d+)"), TimeSpan.FromSeconds(10))).Groups[1].Value;
Console.WriteLine($"peer={peer.Id} child={child}");
Console.Out.Flush();
switch (args.FirstOrDefault())
{
    case "exit":
        return 0;
    case "crash":
        throw new InvalidOperationException("simulated crash of a test run");
    default:
        await Task.Delay(Timeout.Infinite);
        return 0;
}
