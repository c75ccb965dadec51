using System.Diagnostics;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Systemd;

public class SystemdUnitTests
{
    private static string UnitPath => Path.Combine(RepoPaths.Root, "image", "pinhole-edge.service");

    public sealed class SystemdAnalyzeFactAttribute : FactAttribute
    {
        public SystemdAnalyzeFactAttribute()
        {
            Skip = Tools.SkipReason("systemd-analyze");
        }
    }

    [SystemdAnalyzeFact]
    public async Task The_unit_passes_systemd_analyze_verify()
    {
        // verify insists that ExecStart= is executable, so point it at a real file in a temp dir.
        var dir = Directory.CreateTempSubdirectory("pinhole-unit-").FullName;
        try
        {
            var binary = Path.Combine(dir, "pinhole-launch");
            File.Copy("/bin/true", binary);
            var unit = (await File.ReadAllTextAsync(UnitPath)).Replace("/usr/lib/pinhole/pinhole-launch", binary, StringComparison.Ordinal);
            var unitFile = Path.Combine(dir, "pinhole-edge.service");
            await File.WriteAllTextAsync(unitFile, unit);

            var info = new ProcessStartInfo(Tools.Require("systemd-analyze")) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "verify", "--man=no", unitFile }) info.ArgumentList.Add(a);
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            var output = (await stdout) + (await stderr);

            Assert.True(process.ExitCode == 0, output);
            // verify only warns (exit 0) about unknown keys or bad values; any line about our unit is a failure.
            Assert.DoesNotContain("pinhole-edge.service", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_unit_has_the_contract_the_app_implements()
    {
        var lines = File.ReadAllLines(UnitPath).Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#').ToHashSet();
        string[] required =
        [
            "Type=notify", "Restart=always", "Wants=network-online.target", "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/pinhole /etc/pinhole /opt/pinhole", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
            "User=pinhole", "DeviceAllow=char-gpiochip rw", "NotifyAccess=all",
            // The launcher (part of no release) starts ROOT/current/pinhole-edge and rolls a failed update back (docs/updates.md).
            "ExecStart=/usr/lib/pinhole/pinhole-launch /opt/pinhole --config /etc/pinhole/edge.json",
        ];
        Assert.All(required, r => Assert.Contains(r, lines));
        Assert.Contains(lines, l => l.StartsWith("After=network-online.target", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("SupplementaryGroups=", StringComparison.Ordinal) && l.Contains("gpio", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("WatchdogSec=", StringComparison.Ordinal));
        // The app promises to stop within 5 s; systemd must give it at least that.
        var stop = lines.Single(l => l.StartsWith("TimeoutStopSec=", StringComparison.Ordinal));
        Assert.True(int.Parse(stop["TimeoutStopSec=".Length..].TrimEnd('s'), System.Globalization.CultureInfo.InvariantCulture) >= 5);
    }
}
