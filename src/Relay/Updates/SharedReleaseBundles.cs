using System.Security.Cryptography;
using Npgsql;
using Pinhole.Relay.Configuration;
using Pinhole.Transport.Updates;

namespace Pinhole.Relay.Updates;

/// <summary>A release bundle as the shared database lists it.</summary>
/// <param name="Version">Release version.</param>
/// <param name="Architecture">Its architecture.</param>
/// <param name="Size">Bundle bytes.</param>
/// <param name="Sha256">SHA-256 of the whole bundle.</param>
public sealed record SharedBundle(string Version, string Architecture, long Size, byte[] Sha256);

/// <summary>
/// Release bundles in the shared PostgreSQL database (relay.json <c>"database": "postgres://…"</c>,
/// docs/scale-out.md): <c>release_bundles</c> lists each version and architecture with its size and SHA-256,
/// <c>release_chunks</c> holds its bytes in 1 MiB rows. <see cref="ReleaseStore"/> stores a bundle here when
/// it is added, and copies one into its dataDir the first time it needs it, checking the SHA-256; devices are
/// served from that local copy, so PostgreSQL sees one read per bundle and relay, not one per device.
/// </summary>
public sealed class SharedReleaseBundles : IDisposable
{
    /// <summary>Bytes per row of <c>release_chunks</c>.</summary>
    public const int ChunkBytes = 1024 * 1024;

    private readonly NpgsqlDataSource _source;

    /// <summary>Uses the shared database (migrating its schema like a relay does at start).</summary>
    public SharedReleaseBundles(DatabaseUrl database)
    {
        ArgumentNullException.ThrowIfNull(database);
        new Fleet.PostgresFleetStore(database).Dispose();
        _source = NpgsqlDataSource.Create(database.ToNpgsqlConnectionString());
    }

    /// <summary>Every bundle in the database.</summary>
    public IReadOnlyList<SharedBundle> List()
    {
        using var cmd = _source.CreateCommand("SELECT version, architecture, size, sha256 FROM release_bundles");
        using var r = cmd.ExecuteReader();
        var list = new List<SharedBundle>();
        while (r.Read()) list.Add(new SharedBundle(r.GetString(0), r.GetString(1), r.GetInt64(2), (byte[])r[3]));
        return list;
    }

    /// <summary>
    /// Stores <paramref name="file"/> (already checked to be a bundle of that version and architecture) in one
    /// transaction, replacing a bundle stored before for the same pair: a relay reading it meanwhile gets the old
    /// bytes or the new ones, never a mix.
    /// </summary>
    public void Put(string version, string architecture, string file, byte[] sha256, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(sha256);
        using var db = _source.OpenConnection();
        using var tx = db.BeginTransaction();
        using (var delete = new NpgsqlCommand("DELETE FROM release_bundles WHERE version = @v AND architecture = @a", db, tx))
        {
            delete.Parameters.AddWithValue("v", version);
            delete.Parameters.AddWithValue("a", architecture);
            delete.ExecuteNonQuery();
        }
        using var s = File.OpenRead(file);
        using (var row = new NpgsqlCommand("INSERT INTO release_bundles(version, architecture, size, sha256, added) VALUES (@v, @a, @s, @h, @t)", db, tx))
        {
            row.Parameters.AddWithValue("v", version);
            row.Parameters.AddWithValue("a", architecture);
            row.Parameters.AddWithValue("s", s.Length);
            row.Parameters.AddWithValue("h", sha256);
            row.Parameters.AddWithValue("t", now.UtcDateTime);
            row.ExecuteNonQuery();
        }
        using var chunk = new NpgsqlCommand("INSERT INTO release_chunks(version, architecture, part, bytes) VALUES (@v, @a, @i, @b)", db, tx);
        chunk.Parameters.AddWithValue("v", version);
        chunk.Parameters.AddWithValue("a", architecture);
        var index = new NpgsqlParameter<int>("i", 0);
        var bytes = new NpgsqlParameter<byte[]>("b", []);
        chunk.Parameters.Add(index);
        chunk.Parameters.Add(bytes);
        var buffer = new byte[ChunkBytes];
        for (var i = 0; ; i++)
        {
            var n = s.ReadAtLeast(buffer, ChunkBytes, throwOnEndOfStream: false);
            if (n == 0) break;
            index.TypedValue = i;
            bytes.TypedValue = n == ChunkBytes ? buffer : buffer[..n];
            chunk.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>
    /// Writes the bundle's bytes to <paramref name="target"/> (a temporary file, then renamed over it) and checks
    /// them against <paramref name="expected"/>; returns false when the database no longer has that bundle
    /// (replaced or removed meanwhile).
    /// </summary>
    /// <exception cref="ReleaseBundleException">The bytes in the database do not match their SHA-256 or size.</exception>
    public bool CopyTo(SharedBundle expected, string target)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var temp = target + ".fetching";
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        using (var db = _source.OpenConnection())
        // One snapshot: a bundle replaced while it is copied is read whole, old or new.
        using (var tx = db.BeginTransaction(System.Data.IsolationLevel.RepeatableRead))
        {
            using (var check = new NpgsqlCommand("SELECT sha256 FROM release_bundles WHERE version = @v AND architecture = @a", db, tx))
            {
                check.Parameters.AddWithValue("v", expected.Version);
                check.Parameters.AddWithValue("a", expected.Architecture);
                if (check.ExecuteScalar() is not byte[] sha || !sha.AsSpan().SequenceEqual(expected.Sha256)) return false;
            }
            using var read = new NpgsqlCommand("SELECT part, bytes FROM release_chunks WHERE version = @v AND architecture = @a ORDER BY part", db, tx);
            read.Parameters.AddWithValue("v", expected.Version);
            read.Parameters.AddWithValue("a", expected.Architecture);
            using var r = read.ExecuteReader(System.Data.CommandBehavior.SequentialAccess);
            using var file = new FileStream(temp, FileMode.Create, FileAccess.Write);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var next = 0;
            while (r.Read())
            {
                if (r.GetInt32(0) != next++) throw new ReleaseBundleException($"release {expected.Version} {expected.Architecture} in the database misses chunk {next - 1}");
                var bytes = r.GetFieldValue<byte[]>(1);
                hash.AppendData(bytes);
                file.Write(bytes);
            }
            file.Flush(flushToDisk: true);
            var length = file.Length;
            if (length != expected.Size || !hash.GetCurrentHash().AsSpan().SequenceEqual(expected.Sha256))
            {
                file.Dispose();
                File.Delete(temp);
                throw new ReleaseBundleException($"release {expected.Version} {expected.Architecture} in the database is damaged: {length} bytes whose SHA-256 is not the one recorded");
            }
        }
        File.Move(temp, target, overwrite: true);
        return true;
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}
