namespace Pinhole.Benchmarks;

/// <summary>
/// One benchmark: runs our code and a peer doing the same work, prints both figures, and returns a
/// Markdown section for docs/benchmarks.md. Benchmarks are programs, never tests with time limits.
/// </summary>
public interface IBenchmark
{
    /// <summary>Short name used on the command line, e.g. <c>mqtt</c>.</summary>
    string Name { get; }

    /// <summary>One line: what is measured, against which peer.</summary>
    string Description { get; }

    /// <summary>Runs the benchmark and returns its Markdown section (starting with a <c>## </c> heading).</summary>
    Task<string> RunAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A benchmark that takes command-line options (<c>--NAME VALUE</c> after its name), e.g. a smaller
/// size for a quick run.
/// </summary>
public interface IConfigurableBenchmark : IBenchmark
{
    /// <summary>The option names it accepts, without the dashes.</summary>
    IReadOnlyCollection<string> Options { get; }

    /// <summary>Sets one option.</summary>
    /// <exception cref="ArgumentException">The value is not valid for the option.</exception>
    void Configure(string option, string value);
}

/// <summary>
/// Thrown by <see cref="IBenchmark.RunAsync"/> when the machine cannot run the benchmark (not root, a
/// peer program missing): the runner prints the reason, keeps the section already in the output
/// file, and does not count it as a failure.
/// </summary>
public sealed class BenchmarkSkippedException(string reason) : Exception(reason);
