// Placeholder entry point; the appliance issue replaces it with the Generic Host wiring.
Console.WriteLine("pinhole-edge: usage: pinhole-edge --config edge.json | check-config FILE | --help");
return 0;
