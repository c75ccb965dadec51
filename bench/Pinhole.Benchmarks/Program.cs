// Benchmarks print our figures beside a peer's and write docs/benchmarks.md. Each issue adds its own.
Console.WriteLine("pinhole benchmarks: none yet");
return 0;
