using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Systemd;
using Pinhole.EdgeHost.Web;
using Pinhole.Transport.Security;

namespace Pinhole.EdgeHost;

/// <summary>Everything <see cref="EdgeApp.Build"/> needs; tests and benchmarks adjust it.</summary>
public sealed class EdgeHostOptions
{
    /// <summary>The config file (saves from the page go here).</summary>
    public required string ConfigPath { get; init; }

    /// <summary>The validated config loaded from <see cref="ConfigPath"/>.</summary>
    public required EdgeConfig Config { get; init; }

    /// <summary>systemd's environment; read from the process environment by default.</summary>
    public SystemdEnvironment Systemd { get; set; } = SystemdEnvironment.FromEnvironment();

    /// <summary>Supervisor timing.</summary>
    public SupervisorOptions Supervisor { get; set; } = new();

    /// <summary>Wrong-password throttle timing: two free misses per address, nine for the page's account from
    /// addresses that never logged in, then lockouts from 5 s doubling to 15 min.</summary>
    public LoginThrottleOptions LoginThrottle { get; set; } = new()
    {
        FreeFailures = 2,
        FreeFailuresPerAccount = 9,
        FirstLockout = TimeSpan.FromSeconds(5),
        MaxLockout = TimeSpan.FromMinutes(15),
    };

    /// <summary>Most simultaneous connections to the page from one client address (the page takes 64 in all).</summary>
    public int WebConnectionsPerAddress { get; set; } = 16;

    /// <summary>The clock for timers and backoff.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Minimum log level.</summary>
    public LogLevel LogLevel { get; set; } = LogLevel.Information;

    /// <summary>Register the product's own features (uplink, cameras, telemetry). Tests that plug in
    /// stand-in pipelines under the same names turn this off.</summary>
    public bool IncludeFeatures { get; set; } = true;

    /// <summary>Extra registrations: pipeline factories (<see cref="PipelineServiceCollectionExtensions.AddPipelineFactory{TFactory}"/>) and their services.</summary>
    public Action<IServiceCollection>? ConfigureServices { get; set; }
}
