namespace Pinhole.Relay.Fleet;

/// <summary>
/// The relay's once-a-second housekeeping loops (fleet credentials and configs, update rollouts): wait,
/// check, and on an expected failure (the database busy, a file gone) log it and try again next time.
/// </summary>
internal static class PeriodicCheck
{
    /// <summary>Runs <paramref name="check"/> every <paramref name="interval"/> until cancelled.</summary>
    public static async Task RunAsync(TimeSpan interval, TimeProvider time, Func<Task> check,
        Func<Exception, bool> isExpected, Action<Exception> onFailure, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, time, cancellationToken).ConfigureAwait(false);
                await check().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (isExpected(e))
            {
                onFailure(e);
            }
        }
    }
}
