namespace Pinhole.EdgeHost.Threading;

/// <summary>
/// Runs a long loop on a named background thread of its own and reports its end as a task. For
/// loops that mostly sleep or block (a socket reader, a ticking supervisor): one wake-up per event,
/// where a timer or an async wait would wake the timer thread and a pool worker too.
/// </summary>
internal static class DedicatedThread
{
    /// <summary>Starts <paramref name="loop"/> on a new thread; the task completes when it returns and faults with what it threw.</summary>
    public static Task Run(string name, Action loop)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                loop();
                done.TrySetResult();
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        })
        { IsBackground = true, Name = name };
        thread.Start();
        return done.Task;
    }
}
