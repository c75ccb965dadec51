namespace Pinhole.Testing;

/// <summary>Well-known folders of the repository the tests run from.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    /// <summary>The repository root: the nearest folder above the test binaries holding build.sh.</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>The gitignored <c>test-artifacts/</c> folder at the repository root (created on first use): screenshots, captures and logs a failing test leaves behind.</summary>
    public static string Artifacts
    {
        get
        {
            var dir = Path.Combine(Root, "test-artifacts");
            Directory.CreateDirectory(dir);
            return dir;
        }
    }

    /// <summary>The folder holding the peer scripts (such as rtsp-camera.py) copied next to the test binaries.</summary>
    public static string Peers => Path.Combine(AppContext.BaseDirectory, "peers");

    /// <summary>A file name made safe for the artifacts folder from a test's own words.</summary>
    public static string ArtifactPath(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var safe = string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_'));
        return Path.Combine(Artifacts, safe);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "build.sh")) && Directory.Exists(Path.Combine(dir.FullName, "tests")))
                return dir.FullName;
        }
        // Running from somewhere unusual (a copied test folder): keep artifacts beside the binaries.
        return AppContext.BaseDirectory;
    }
}
