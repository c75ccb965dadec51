using System.Net;
using Pinhole.Transport.Sockets;

namespace Pinhole.Transport.Tests.Sockets;

public class ConnectionsPerAddressTests
{
    [Fact]
    public void Each_address_gets_its_own_cap_and_a_closed_connection_frees_its_slot()
    {
        var counter = new ConnectionsPerAddress(2);
        var a = IPAddress.Parse("192.0.2.1");
        var b = IPAddress.Parse("192.0.2.2");
        Assert.True(counter.TryEnter(a));
        Assert.True(counter.TryEnter(a));
        Assert.False(counter.TryEnter(a));
        Assert.Equal(2, counter.Count(a)); // a refusal counts nothing
        Assert.True(counter.TryEnter(b));
        counter.Leave(a);
        Assert.True(counter.TryEnter(a));
        counter.Leave(a);
        counter.Leave(a);
        Assert.Equal(0, counter.Count(a));
        counter.Leave(a); // more leaves than enters never go negative
        Assert.Equal(0, counter.Count(a));
        Assert.True(counter.TryEnter(a) && counter.TryEnter(a));
    }

    [Fact]
    public void An_IPv4_mapped_IPv6_address_is_the_same_client_as_its_IPv4_address()
    {
        var counter = new ConnectionsPerAddress(1);
        Assert.True(counter.TryEnter(IPAddress.Parse("192.0.2.7")));
        Assert.False(counter.TryEnter(IPAddress.Parse("::ffff:192.0.2.7")));
        counter.Leave(IPAddress.Parse("::ffff:192.0.2.7"));
        Assert.Equal(0, counter.Count(IPAddress.Parse("192.0.2.7")));
    }

    [Fact]
    public async Task Concurrent_enters_never_admit_more_than_the_cap()
    {
        var counter = new ConnectionsPerAddress(10);
        var address = IPAddress.Parse("192.0.2.9");
        var admitted = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                if (!counter.TryEnter(address)) continue;
                Interlocked.Increment(ref admitted);
                Assert.InRange(counter.Count(address), 1, 10);
                Interlocked.Decrement(ref admitted);
                counter.Leave(address);
            }
        })));
        Assert.Equal(0, counter.Count(address));
        Assert.Equal(0, admitted);
    }

    [Fact]
    public void A_cap_below_one_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionsPerAddress(0));
}
