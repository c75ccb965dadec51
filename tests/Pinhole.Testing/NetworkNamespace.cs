using System.Net;
using System.Net.Http;
using System.Net.Sockets;

namespace Pinhole.Testing;

/// <summary>
/// Runs code and commands inside a named network namespace (<c>ip netns</c>, under /var/run/netns).
/// <see cref="NatTopology"/> creates the namespaces; this class only enters them.
/// </summary>
public static class NetworkNamespace
{
    /// <summary>
    /// Runs <paramref name="action"/> on a thread of its own that has entered
    /// <paramref name="name"/> (setns). Sockets created there stay in that namespace for their
    /// whole life, whichever thread uses them later. The thread ends right after, so the namespace
    /// never leaks into the thread pool.
    /// </summary>
    public static Task<T> RunInAsync<T>(string name, Func<T> action)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(action);
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using (var handle = File.OpenHandle($"/var/run/netns/{name}", FileMode.Open, FileAccess.Read))
                    Posix.EnterNetworkNamespace(handle);
                done.SetResult(action());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = $"netns {name}",
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>Opens a TCP connection from inside namespace <paramref name="name"/> (null: the test's own); throws <see cref="SocketException"/> or <see cref="TimeoutException"/> when it cannot.</summary>
    public static async Task<TcpClient> ConnectFromAsync(string? name, IPAddress address, int port, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(address);
        var client = name is null ? new TcpClient(address.AddressFamily) : await RunInAsync(name, () => new TcpClient(address.AddressFamily));
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            await client.ConnectAsync(address, port, cts.Token);
            return client;
        }
        catch (OperationCanceledException)
        {
            client.Dispose();
            throw new TimeoutException($"no TCP connection from {name ?? "the test's namespace"} to {address}:{port} within {timeout.TotalSeconds:0.#} s");
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>True when a TCP connection to <paramref name="address"/>:<paramref name="port"/> can be opened from namespace <paramref name="name"/> (null: the test's own) within 2 s.</summary>
    public static async Task<bool> CanConnectAsync(string? name, IPAddress address, int port)
    {
        try
        {
            using var client = await ConnectFromAsync(name, address, port, TimeSpan.FromSeconds(2));
            return true;
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>
    /// An HTTP handler whose connections are opened from inside namespace <paramref name="name"/>:
    /// use it with <c>new HttpClient(handler)</c>, or with
    /// <c>ClientWebSocket.ConnectAsync(uri, new HttpMessageInvoker(handler), ct)</c> for WebSockets.
    /// URLs must name IP addresses (there is no DNS inside the namespaces).
    /// </summary>
    public static SocketsHttpHandler CreateHttpHandler(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = async (context, cancellationToken) =>
            {
                if (!IPAddress.TryParse(context.DnsEndPoint.Host.Trim('[', ']'), out var address))
                    throw new ArgumentException($"use an IP address inside namespace {name}, not '{context.DnsEndPoint.Host}'");
                var client = await ConnectFromAsync(name, address, context.DnsEndPoint.Port, TimeSpan.FromSeconds(10));
                cancellationToken.ThrowIfCancellationRequested();
                return client.GetStream();
            },
        };
    }

    /// <summary>The program and arguments that run <paramref name="program"/> inside namespace <paramref name="name"/> (unchanged when null).</summary>
    public static (string FileName, IReadOnlyList<string> Arguments) Wrap(string? name, string program, IEnumerable<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        return name is null
            ? (program, arguments.ToArray())
            : ("ip", ["netns", "exec", name, Tools.Require(program), .. arguments]);
    }
}
