using System.Diagnostics;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace Pinhole.Testing;

/// <summary>How <see cref="Chromium"/> starts the browser.</summary>
public sealed record ChromiumOptions
{
    /// <summary>Window width in pixels (screenshots have this size).</summary>
    public int Width { get; init; } = 1280;

    /// <summary>Window height in pixels.</summary>
    public int Height { get; init; } = 720;

    /// <summary>Further command-line switches for Chromium.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>How long one WebDriver command (a navigation, a script) may take.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// Headless Chromium driven through Selenium, with Debian's /usr/bin/chromedriver and
/// /usr/bin/chromium given explicitly so Selenium Manager never downloads a browser or driver.
/// Each instance has a fresh profile in a temp dir, deleted on Dispose along with every process.
/// </summary>
public sealed class Chromium : IDisposable
{
    /// <summary>The browser binary.</summary>
    public const string BrowserPath = "/usr/bin/chromium";

    /// <summary>The driver binary (Debian's chromium-driver, the same version as the browser).</summary>
    public const string DriverPath = "/usr/bin/chromedriver";

    private readonly ChromeDriverService _service;
    private int _disposed;

    private Chromium(ChromeDriverService service, ChromeDriver driver, string userDataDirectory)
    {
        _service = service;
        Driver = driver;
        UserDataDirectory = userDataDirectory;
        ExitCleanup.Register(this, KillProcesses);
    }

    /// <summary>Null when Chromium and its driver are installed, otherwise the skip reason.</summary>
    public static string? SkipReason => Tools.SkipReason(BrowserPath, DriverPath);

    /// <summary>The switches every instance starts with (the profile dir is added per instance).</summary>
    public static IReadOnlyList<string> DefaultArguments { get; } =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
        // Containers often have a 64 MB /dev/shm; Chromium then crashes tabs with big frames.
        "--disable-dev-shm-usage",
    ];

    /// <summary>The Selenium driver, for anything the helpers here do not cover.</summary>
    public ChromeDriver Driver { get; }

    /// <summary>The fresh profile folder of this instance.</summary>
    public string UserDataDirectory { get; }

    /// <summary>Starts a headless browser.</summary>
    public static Chromium Start(ChromiumOptions? options = null)
    {
        options ??= new ChromiumOptions();
        if (SkipReason is { } reason)
            throw new InvalidOperationException(reason);
        var profile = Directory.CreateTempSubdirectory("pinhole-chromium-").FullName;
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(DriverPath)!, Path.GetFileName(DriverPath));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var chrome = new ChromeOptions { BinaryLocation = BrowserPath };
        chrome.AddArguments(DefaultArguments);
        chrome.AddArgument($"--user-data-dir={profile}");
        chrome.AddArgument($"--window-size={options.Width},{options.Height}");
        chrome.AddArguments(options.ExtraArguments);
        chrome.SetLoggingPreference(LogType.Browser, LogLevel.All);
        try
        {
            var driver = new ChromeDriver(service, chrome, options.CommandTimeout);
            return new Chromium(service, driver, profile);
        }
        catch
        {
            service.Dispose();
            TryDelete(profile);
            throw;
        }
    }

    /// <summary>Loads <paramref name="url"/> and waits for the page's load event.</summary>
    public void Navigate(Uri url) => Driver.Navigate().GoToUrl(url);

    /// <summary>Runs <paramref name="script"/> (a function body: use <c>return</c>) in the page and returns its result.</summary>
    public object? Execute(string script, params object?[] args) => Driver.ExecuteScript(script, args);

    /// <summary>Runs <paramref name="script"/> in the page and converts its result to <typeparamref name="T"/> (JS numbers come back as long or double).</summary>
    public T Execute<T>(string script, params object?[] args)
    {
        var value = Driver.ExecuteScript(script, args);
        return value is T t ? t : (T)Convert.ChangeType(value, typeof(T), System.Globalization.CultureInfo.InvariantCulture)!;
    }

    /// <summary>
    /// Polls a JS expression every 100 ms until it is truthy and returns its value; throws
    /// <see cref="TimeoutException"/> (with the last value and the browser console) when it is not within <paramref name="timeout"/>.
    /// </summary>
    public async Task<object?> WaitForAsync(string expression, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        object? last = null;
        while (true)
        {
            last = Driver.ExecuteScript($"return ({expression});");
            if (last is not (null or false or "" or 0L or 0.0))
                return last;
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"`{expression}` still {last ?? "null"} after {timeout.TotalSeconds:0.#} s; browser console:\n{string.Join('\n', ConsoleMessages())}");
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>The browser console messages logged since the last call.</summary>
    public IReadOnlyList<string> ConsoleMessages()
    {
        try
        {
            return Driver.Manage().Logs.GetLog(LogType.Browser).Select(e => $"{e.Level}: {e.Message}").ToList();
        }
        catch (WebDriverException e)
        {
            return [$"(console not available: {e.Message})"];
        }
    }

    /// <summary>Saves a PNG screenshot as test-artifacts/<paramref name="name"/>(.png) at the repository root and returns its path.</summary>
    public string SaveScreenshot(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var path = RepoPaths.ArtifactPath(name.EndsWith(".png", StringComparison.OrdinalIgnoreCase) ? name : name + ".png");
        Driver.GetScreenshot().SaveAsFile(path);
        return path;
    }

    /// <summary>Quits the browser, stops the driver, kills anything left, and deletes the profile.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            Driver.Quit();
        }
        catch (WebDriverException)
        {
        }
        KillProcesses();
        Driver.Dispose();
        _service.Dispose();
        ExitCleanup.Unregister(this);
        TryDelete(UserDataDirectory);
    }

    private void KillProcesses()
    {
        // chromedriver starts chromium as its child; killing the driver's tree takes the browser too.
        try
        {
            if (_service.ProcessId > 0)
            {
                using var driverProcess = Process.GetProcessById(_service.ProcessId);
                driverProcess.Kill(entireProcessTree: true);
            }
        }
        catch (ArgumentException)
        {
        }
        catch (InvalidOperationException)
        {
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    private static void TryDelete(string dir)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                Directory.Delete(dir, recursive: true);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException)
            {
                // Chromium may still be writing its profile for a moment after it was killed.
                Thread.Sleep(200);
            }
        }
    }
}
