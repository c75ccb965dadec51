using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pinhole.EdgeHost.Configuration;

namespace Pinhole.EdgeHost.Supervision;

/// <summary>
/// The composition seam: each feature (uplink, cameras, sensors, MQTT) registers one factory that
/// turns the current <see cref="EdgeConfig"/> into the pipelines it wants running. The supervisor
/// calls every factory at start-up and again on each config apply, and compares the specs by name
/// and <see cref="PipelineSpec.Fingerprint"/>: unchanged pipelines keep running, changed ones are
/// stopped and recreated, new ones start and missing ones stop.
/// </summary>
public interface IPipelineFactory
{
    /// <summary>The pipelines this feature wants for <paramref name="config"/>. Called with validated configs only; must not start anything.</summary>
    IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config);
}

/// <summary>
/// A pipeline the supervisor should run: its unique <paramref name="Name"/>, a fingerprint of the
/// config it depends on (equal fingerprints mean "nothing changed, keep it running"), and how to make
/// a fresh instance — called again for every restart, so an instance never has to be reusable.
/// </summary>
public sealed record PipelineSpec(string Name, string Fingerprint, Func<IPipeline> Create)
{
    private static readonly JsonSerializerOptions FingerprintOptions = new() { WriteIndented = false };

    /// <summary>A spec whose fingerprint is the JSON of <paramref name="config"/> (e.g. one <see cref="CameraConfig"/>, or a tuple of the keys the pipeline reads).</summary>
    public static PipelineSpec For<TConfig>(string name, TConfig config, Func<IPipeline> create) =>
        new(name, JsonSerializer.Serialize(config, FingerprintOptions), create);
}

/// <summary>Registration helpers.</summary>
public static class PipelineServiceCollectionExtensions
{
    /// <summary>Registers a feature's pipeline factory (a singleton; it may take any registered service in its constructor).</summary>
    public static IServiceCollection AddPipelineFactory<TFactory>(this IServiceCollection services)
        where TFactory : class, IPipelineFactory
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPipelineFactory, TFactory>());
        return services;
    }

    /// <summary>Registers a factory written as a function of the service provider and the config.</summary>
    public static IServiceCollection AddPipelineFactory(this IServiceCollection services,
        Func<IServiceProvider, EdgeConfig, IEnumerable<PipelineSpec>> create)
    {
        services.AddSingleton<IPipelineFactory>(sp => new DelegatePipelineFactory(sp, create));
        return services;
    }

    private sealed class DelegatePipelineFactory(IServiceProvider services, Func<IServiceProvider, EdgeConfig, IEnumerable<PipelineSpec>> create) : IPipelineFactory
    {
        public IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config) => create(services, config);
    }
}
