// Benchmarks print our figures beside a peer's and write docs/benchmarks.md. Each issue adds its own mode.
using Pinhole.Benchmarks.Mqtt;

switch (args.FirstOrDefault())
{
    case "mqtt":
        return await MqttPublishBenchmark.RunAsync(args[1..]);
    default:
        Console.WriteLine("pinhole benchmarks: modes: mqtt [--qos0-count N] [--qos1-count N] [--runs N] [--write docs/benchmarks.md]");
        return args.Length == 0 ? 0 : 2;
}
