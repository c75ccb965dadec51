namespace Pinhole.EdgeHost.Configuration;

/// <summary>One thing wrong with a config, located by its JSON path (e.g. <c>cameras[1].source</c>).</summary>
public sealed record ConfigProblem(string Path, string Message)
{
    /// <summary>The one-line form printed by <c>check-config</c>: <c>path: message</c>.</summary>
    public override string ToString() => Path.Length == 0 ? Message : $"{Path}: {Message}";
}

/// <summary>The outcome of loading edge.json: a config when there were no problems, otherwise every problem found.</summary>
public sealed class ConfigLoadResult
{
    internal ConfigLoadResult(EdgeConfig? config, IReadOnlyList<ConfigProblem> problems)
    {
        Config = problems.Count == 0 ? config : null;
        Problems = problems;
    }

    /// <summary>The validated config with defaults filled in; null when <see cref="Problems"/> is not empty.</summary>
    public EdgeConfig? Config { get; }

    /// <summary>Every problem, in document order.</summary>
    public IReadOnlyList<ConfigProblem> Problems { get; }

    /// <summary>True when the config can be used.</summary>
    public bool IsValid => Config is not null;
}
