// Placeholder entry point; the video issue replaces it with the ASP.NET Core wiring.
Console.WriteLine("pinhole-relay: usage: pinhole-relay --config relay.json | check-config FILE | devices add ID --config relay.json | --help");
return 0;
