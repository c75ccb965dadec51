using System.Diagnostics;
using Pinhole.Testing;

namespace Pinhole.Fuzz.Tests;

/// <summary>
/// The CI part of fuzzing: every target in fuzz/corpus runs under libFuzzer for a bounded time
/// (<see cref="SecondsPerTarget"/>, or PINHOLE_FUZZ_SECONDS). libFuzzer first replays the checked-in
/// corpus (so every past crash input is re-checked), then mutates; a crash, a timeout or the .NET
/// process dying fails the test with libFuzzer's report and the input's path.
/// </summary>
public class BoundedFuzzRunTests
{
    /// <summary>Seconds each target fuzzes in CI: 13 targets stay under three minutes together on 2 busy cores.</summary>
    public const int SecondsPerTarget = 10;

    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        var corpus = Path.Combine(RepoPaths.Root, "fuzz", "corpus");
        if (Directory.Exists(corpus))
        {
            foreach (var dir in Directory.GetDirectories(corpus).Order(StringComparer.Ordinal))
                data.Add(Path.GetFileName(dir));
        }
        return data;
    }

    [LibFuzzerTheory]
    [MemberData(nameof(Targets))]
    public void Target_survives_a_bounded_libFuzzer_run(string target)
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("PINHOLE_FUZZ_SECONDS"), out var s) && s > 0 ? s : SecondsPerTarget;
        var bin = Path.Combine(RepoPaths.Root, "fuzz", "Pinhole.Fuzz", "bin", "Release", "net10.0");
        if (!File.Exists(Path.Combine(bin, "Pinhole.Fuzz.dll")))
            bin = Path.Combine(RepoPaths.Root, "fuzz", "Pinhole.Fuzz", "bin", "Debug", "net10.0");
        var psi = new ProcessStartInfo("bash")
        {
            ArgumentList = { Path.Combine(RepoPaths.Root, "fuzz", "fuzz.sh"), target, seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["FUZZ_BIN"] = bin;
        // Shared by the targets of one run (the bridge and the instrumented copy are built once).
        psi.Environment["FUZZ_OUT"] = Path.Combine(RepoPaths.Artifacts, "fuzz");
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // Generous: startup, instrumenting once, the corpus replay and the run itself on a loaded machine.
        if (!process.WaitForExit(TimeSpan.FromSeconds(seconds + 240)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"fuzz.sh {target} did not finish in {seconds + 240} s");
        }
        var output = stdout.Result + stderr.Result;
        Assert.True(process.ExitCode == 0, $"fuzz target {target} failed (exit {process.ExitCode}):\n{output}");
        // A run that never started fuzzing is not a pass: libFuzzer prints DONE with its figures.
        Assert.Contains("DONE", output, StringComparison.Ordinal);
    }
}

/// <summary>A theory skipped with the reason when clang or libFuzzer's runtime is missing.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class LibFuzzerTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the machine cannot build the libFuzzer bridge.</summary>
    public LibFuzzerTheoryAttribute() => Skip = SkipReason();

    private static string? SkipReason()
    {
        if (Tools.SkipReason("clang") is { } clang) return clang + " (Debian: clang libclang-rt-14-dev)";
        var runtime = Directory.Exists("/usr/lib")
            ? Directory.EnumerateDirectories("/usr/lib", "llvm-*")
                .SelectMany(d => Directory.Exists(Path.Combine(d, "lib", "clang")) ? Directory.EnumerateFiles(Path.Combine(d, "lib", "clang"), "libclang_rt.fuzzer*.a", SearchOption.AllDirectories) : [])
                .Any()
            : false;
        return runtime ? null : "needs libFuzzer's runtime (libclang_rt.fuzzer, Debian: libclang-rt-14-dev)";
    }
}
