// libFuzzer -> .NET bridge for SharpFuzz's libFuzzer mode (Fuzzer.LibFuzzer.Run).
//
// libFuzzer runs in this native process; the code under test runs in a .NET child process whose
// assemblies were rewritten by the `sharpfuzz` tool to record edge hits into a 64 KiB map. The two
// sides share one System V shared-memory segment and two pipes. What SharpFuzz 2.3.0 expects:
//
//   shared memory  [0, 64 KiB)          edge-hit map, written by the instrumented .NET code
//                  [64 KiB, +1 MiB)     the current input, written here
//   environment    __LIBFUZZER_SHM_ID            shmget id of the segment
//                  __LIBFUZZER_CONTROL_PIPE_ID   fd the child reads input lengths from
//                  __LIBFUZZER_STATUS_PIPE_ID    fd the child writes results to
//   handshake      the child writes one int32 once it is attached and ready
//   per input      we write the int32 input length; the child runs the target and answers with an
//                  int32 status: 0 = fine, anything else = an exception escaped (a finding)
//
// After each input the child's edge map is copied into a __libfuzzer_extra_counters section, which
// libFuzzer reads as extra coverage features, so it steers mutation by .NET coverage.
//
// Differences from a bare bridge, on purpose:
//   * the child dying (stack overflow, Environment.FailFast, OOM kill) is a finding: we trap, so
//     libFuzzer saves the input as crash-*, instead of exiting without a reproducer;
//   * the child gets PR_SET_PDEATHSIG, so a libFuzzer timeout (which _Exit()s this process) never
//     leaves a spinning .NET process behind;
//   * the child's command line is everything after `--dotnet-command`, so a target name can be
//     passed next to the assembly.
//
// Build: clang -O1 -fsanitize=fuzzer dotnet-bridge.c -o dotnet-bridge
// Run:   dotnet-bridge [libFuzzer flags] [corpus dirs] --dotnet-command dotnet Pinhole.Fuzz.dll rtsp
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum
{
    EDGE_MAP_BYTES = 1 << 16,
    MAX_INPUT_BYTES = 1 << 20,
    // Fixed descriptor numbers in the child, out of the way of stdio and anything the runtime opens early.
    CHILD_CONTROL_FD = 198,
    CHILD_STATUS_FD = 199,
};

__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t dotnet_edges[EDGE_MAP_BYTES];

static int segment_id = -1;
static uint8_t *segment;
static int control_fd = -1; // we write input lengths here
static int status_fd = -1;  // we read results here
static pid_t child = -1;

static void fail(const char *what)
{
    fprintf(stderr, "dotnet-bridge: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void drop_segment(void)
{
    if (segment_id >= 0) shmctl(segment_id, IPC_RMID, NULL);
}

// Reads or writes exactly four bytes, retrying on EINTR. Returns 0 on success, -1 on EOF or error.
static int read_int32(int fd, int32_t *value)
{
    size_t got = 0;
    while (got < sizeof *value)
    {
        ssize_t n = read(fd, (char *)value + got, sizeof *value - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_int32(int fd, int32_t value)
{
    size_t put = 0;
    while (put < sizeof value)
    {
        ssize_t n = write(fd, (const char *)&value + put, sizeof value - put);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        put += (size_t)n;
    }
    return 0;
}

// The child exited or was killed while working on an input: say how, then trap so libFuzzer
// records the input that did it.
static void child_died(void)
{
    int status = 0;
    if (child > 0 && waitpid(child, &status, 0) == child)
    {
        if (WIFSIGNALED(status))
            fprintf(stderr, "dotnet-bridge: the .NET process was killed by signal %d\n", WTERMSIG(status));
        else if (WIFEXITED(status))
            fprintf(stderr, "dotnet-bridge: the .NET process exited with code %d\n", WEXITSTATUS(status));
    }
    else
    {
        fprintf(stderr, "dotnet-bridge: lost the .NET process\n");
    }
    __builtin_trap();
}

static void start_child(char **command)
{
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) fail("pipe");

    segment_id = shmget(IPC_PRIVATE, EDGE_MAP_BYTES + MAX_INPUT_BYTES, IPC_CREAT | IPC_EXCL | 0600);
    if (segment_id < 0) fail("shmget");
    atexit(drop_segment);
    segment = shmat(segment_id, NULL, 0);
    if (segment == (void *)-1) fail("shmat");

    pid_t parent = getpid();
    child = fork();
    if (child < 0) fail("fork");
    if (child == 0)
    {
        // Die with the fuzzer, whatever way it ends.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        if (dup2(to_child[0], CHILD_CONTROL_FD) < 0 || dup2(from_child[1], CHILD_STATUS_FD) < 0) fail("dup2");
        close(to_child[0]);
        close(to_child[1]);
        close(from_child[0]);
        close(from_child[1]);
        char id[16];
        snprintf(id, sizeof id, "%d", segment_id);
        char control[8], status[8];
        snprintf(control, sizeof control, "%d", CHILD_CONTROL_FD);
        snprintf(status, sizeof status, "%d", CHILD_STATUS_FD);
        if (setenv("__LIBFUZZER_SHM_ID", id, 1) || setenv("__LIBFUZZER_CONTROL_PIPE_ID", control, 1)
            || setenv("__LIBFUZZER_STATUS_PIPE_ID", status, 1))
            fail("setenv");
        execvp(command[0], command);
        fail("exec");
    }

    close(to_child[0]);
    close(from_child[1]);
    control_fd = to_child[1];
    status_fd = from_child[0];
    // A child that exits before any input is a setup problem (wrong path, missing runtime), not a finding.
    signal(SIGPIPE, SIG_IGN);
    int32_t ready;
    if (read_int32(status_fd, &ready) != 0)
    {
        fprintf(stderr, "dotnet-bridge: the .NET process ended before it was ready (see its output above)\n");
        exit(2);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char **args = *argv;
    for (int i = 1; i < *argc; i++)
    {
        if (strcmp(args[i], "--dotnet-command") == 0 && i + 1 < *argc)
        {
            start_child(&args[i + 1]);
            // Hide the child's command line from libFuzzer's own flag and corpus parsing.
            *argc = i;
            return 0;
        }
    }
    fprintf(stderr, "usage: %s [libFuzzer flags] [corpus dirs] --dotnet-command dotnet TARGET.dll [ARGS]\n", args[0]);
    exit(2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT_BYTES)
    {
        fprintf(stderr, "dotnet-bridge: input of %zu bytes is above the 1 MiB the shared segment holds; use -max_len\n", size);
        exit(2);
    }
    memset(segment, 0, EDGE_MAP_BYTES);
    memcpy(segment + EDGE_MAP_BYTES, data, size);
    if (write_int32(control_fd, (int32_t)size) != 0) child_died();
    int32_t status;
    if (read_int32(status_fd, &status) != 0) child_died();
    memcpy(dotnet_edges, segment, EDGE_MAP_BYTES);
    if (status != 0)
    {
        fprintf(stderr, "dotnet-bridge: an exception escaped the target (its stack trace is above)\n");
        __builtin_trap();
    }
    return 0;
}
