using SharpFuzz;

namespace Pinhole.Fuzz;

/// <summary>
/// Entry point. Under the libFuzzer bridge (fuzz/driver/dotnet-bridge.c sets the
/// <c>__LIBFUZZER_*</c> variables) it serves inputs to one target until the bridge goes away:
/// <c>dotnet Pinhole.Fuzz.dll TARGET</c>. Without the bridge it replays files or directories:
/// <c>dotnet Pinhole.Fuzz.dll TARGET PATH...</c>, printing the exception of any input that breaks
/// the target's contract (exit 1), so a crash-* file from libFuzzer can be reproduced under a debugger.
/// </summary>
public static class Program
{
    /// <summary>Runs the target named by the first argument; see the type summary.</summary>
    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length == 0 || args[0] is "-h" or "--help" || !FuzzTargets.All.TryGetValue(args[0], out var target))
        {
            Console.Error.WriteLine("usage: Pinhole.Fuzz TARGET [FILE|DIR ...]");
            Console.Error.WriteLine("targets: " + string.Join(", ", FuzzTargets.All.Keys));
            return args.Length == 0 || args[0] is "-h" or "--help" ? 0 : 2;
        }

        if (Environment.GetEnvironmentVariable("__LIBFUZZER_SHM_ID") is not null)
        {
            // Only the target's own protocol exception may escape its parser; FuzzTargets.Run
            // swallows that one, so anything reaching SharpFuzz is a finding.
            Fuzzer.LibFuzzer.Run(target.Run);
            return 0;
        }

        var failures = 0;
        var count = 0;
        foreach (var file in args.Skip(1).SelectMany(Expand))
        {
            count++;
            try
            {
                target.Run(File.ReadAllBytes(file));
            }
#pragma warning disable CA1031 // replay reports every escaping exception as a finding
            catch (Exception e)
#pragma warning restore CA1031
            {
                failures++;
                Console.Error.WriteLine($"{file}: {e}");
            }
        }
        Console.WriteLine($"{target.Name}: {count} inputs, {failures} broke the contract");
        return failures == 0 ? 0 : 1;
    }

    private static IEnumerable<string> Expand(string path) =>
        Directory.Exists(path) ? Directory.EnumerateFiles(path).Order(StringComparer.Ordinal) : [path];
}
