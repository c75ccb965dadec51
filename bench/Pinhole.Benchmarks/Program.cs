using System.Reflection;
using System.Text;
using Pinhole.Benchmarks;

// Usage: Pinhole.Benchmarks [--out docs/benchmarks.md] [NAME...] [--OPTION VALUE...]
// With no names every benchmark runs. Each prints our figures beside its peer's; with --out the
// Markdown sections are written to that file (sections of benchmarks not run are kept). Options other
// than --out go to the benchmarks that take them (e.g. `scale --devices 20 --viewers 100`).

// The edge-startup benchmark runs the edge host in a child process of this program.
if (args is ["edge-child", ..]) return await EdgeStartupBenchmark.RunChildAsync(args[1..]);

var benchmarks = Assembly.GetExecutingAssembly().GetTypes()
    .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal)
    .ToList();

string? output = null;
var selected = new List<string>();
var options = new List<(string Name, string Value)>();
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--out" && i + 1 < args.Length) output = args[++i];
    else if (args[i].StartsWith("--", StringComparison.Ordinal) && args[i] is not "--list" && i + 1 < args.Length) options.Add((args[i][2..], args[++i]));
    else if (args[i] is "--list" or "-l")
    {
        foreach (var b in benchmarks) Console.WriteLine($"{b.Name,-16} {b.Description}");
        return 0;
    }
    else selected.Add(args[i]);
}
var unknown = selected.Where(n => benchmarks.All(b => b.Name != n)).ToList();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"unknown benchmark(s): {string.Join(", ", unknown)}; known: {string.Join(", ", benchmarks.Select(b => b.Name))}");
    return 2;
}
var toRun = selected.Count == 0 ? benchmarks : benchmarks.Where(b => selected.Contains(b.Name)).ToList();
if (toRun.Count == 0)
{
    Console.Error.WriteLine("no benchmarks are defined yet");
    return 0;
}
foreach (var (name, value) in options)
{
    var takers = toRun.OfType<IConfigurableBenchmark>().Where(b => b.Options.Contains(name)).ToList();
    if (takers.Count == 0)
    {
        Console.Error.WriteLine($"--{name}: no selected benchmark takes this option");
        return 2;
    }
    try
    {
        foreach (var b in takers) b.Configure(name, value);
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine(e.Message);
        return 2;
    }
}

var sections = output is not null && File.Exists(output) ? ReadSections(File.ReadAllText(output)) : [];
var failed = 0;
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
foreach (var b in toRun)
{
    Console.WriteLine($"=== {b.Name}: {b.Description}");
    try
    {
        var section = await b.RunAsync(cts.Token);
        Console.WriteLine(section);
        sections[b.Name] = section.TrimEnd() + "\n";
    }
    catch (BenchmarkSkippedException e)
    {
        Console.WriteLine($"benchmark {b.Name} skipped: {e.Message}");
    }
    catch (Exception e) when (e is not OperationCanceledException)
    {
        failed++;
        Console.Error.WriteLine($"benchmark {b.Name} failed: {e.Message}");
    }
}

if (output is not null)
{
    var doc = new StringBuilder();
    doc.Append("# Benchmarks\n\n");
    doc.Append("Written by `./build.sh bench` (machine: ").Append(Environment.ProcessorCount)
       .Append(" cores, ").Append(System.Runtime.InteropServices.RuntimeInformation.OSDescription).Append("). ");
    doc.Append("Each section shows Pinhole's figure beside a peer doing the same work on the same machine.\n\n");
    foreach (var (name, text) in sections.OrderBy(s => s.Key, StringComparer.Ordinal))
        doc.Append("<!-- bench:").Append(name).Append(" -->\n").Append(text).Append('\n');
    File.WriteAllText(output, doc.ToString());
    Console.WriteLine($"wrote {output}");
}
return failed == 0 ? 0 : 1;

static Dictionary<string, string> ReadSections(string text)
{
    var result = new Dictionary<string, string>(StringComparer.Ordinal);
    var parts = text.Split("<!-- bench:");
    foreach (var part in parts.Skip(1))
    {
        var end = part.IndexOf(" -->\n", StringComparison.Ordinal);
        if (end < 0) continue;
        result[part[..end]] = part[(end + 5)..].TrimEnd() + "\n";
    }
    return result;
}
