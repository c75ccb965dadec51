// The peers are heavy on a 2-core machine shared with other builds: at most two test classes at a time.
[assembly: CollectionBehavior(MaxParallelThreads = 2)]
