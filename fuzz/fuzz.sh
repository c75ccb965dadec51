#!/usr/bin/env bash
# Runs libFuzzer targets over Pinhole.Transport (see docs/fuzzing.md).
#   fuzz/fuzz.sh [TARGET|all] [SECONDS]     default: all targets, 60 s each
# Environment:
#   FUZZ_BIN   build output holding Pinhole.Fuzz.dll (default fuzz/Pinhole.Fuzz/bin/$CONFIGURATION/net10.0)
#   FUZZ_OUT   working folder: instrumented copy, bridge, grown corpora, findings (default out/fuzz)
#   FUZZ_NICE  niceness of the fuzzing processes (default 10)
# Exit: 0 no finding, 1 a target found a crash/timeout (its input is in FUZZ_OUT/findings),
#       77 clang or libFuzzer is missing (callers skip), 2 anything else.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
ROOT=$PWD
CONFIGURATION=${CONFIGURATION:-Release}
TARGET=${1:-all}
SECONDS_EACH=${2:-60}
FUZZ_BIN=${FUZZ_BIN:-$ROOT/fuzz/Pinhole.Fuzz/bin/$CONFIGURATION/net10.0}
FUZZ_OUT=${FUZZ_OUT:-$ROOT/out/fuzz}
FUZZ_NICE=${FUZZ_NICE:-10}

CLANG=$(command -v clang || command -v clang-14 || true)
if [ -z "$CLANG" ]; then
  echo "fuzz: clang is not installed (Debian: clang libclang-rt-14-dev)" >&2
  exit 77
fi
[ -f "$FUZZ_BIN/Pinhole.Fuzz.dll" ] || { echo "fuzz: $FUZZ_BIN/Pinhole.Fuzz.dll is missing; build first" >&2; exit 2; }

mkdir -p "$FUZZ_OUT"
BRIDGE=$FUZZ_OUT/dotnet-bridge
if [ ! -x "$BRIDGE" ] || [ "$ROOT/fuzz/driver/dotnet-bridge.c" -nt "$BRIDGE" ]; then
  if ! "$CLANG" -O1 -g -fsanitize=fuzzer "$ROOT/fuzz/driver/dotnet-bridge.c" -o "$BRIDGE.tmp" 2>"$FUZZ_OUT/clang.log"; then
    cat "$FUZZ_OUT/clang.log" >&2
    echo "fuzz: clang cannot link libFuzzer (-fsanitize=fuzzer); Debian: libclang-rt-14-dev" >&2
    exit 77
  fi
  mv "$BRIDGE.tmp" "$BRIDGE"
fi

# Instrument a fresh copy whenever the build changed: sharpfuzz rewrites the dll in place and
# refuses to do it twice, so the build output itself is never touched.
BIN=$FUZZ_OUT/bin
if [ ! -f "$BIN/.instrumented" ] || [ "$FUZZ_BIN/Pinhole.Transport.dll" -nt "$BIN/.instrumented" ] \
    || [ "$FUZZ_BIN/Pinhole.Fuzz.dll" -nt "$BIN/.instrumented" ]; then
  rm -rf "$BIN"
  cp -r "$FUZZ_BIN" "$BIN"
  (cd "$ROOT" && dotnet tool restore >/dev/null && dotnet sharpfuzz "$BIN/Pinhole.Transport.dll" >/dev/null)
  touch "$BIN/.instrumented"
fi

if [ "$TARGET" = all ]; then
  mapfile -t TARGETS < <(cd "$ROOT/fuzz/corpus" && ls -d -- */ | tr -d /)
else
  TARGETS=("$TARGET")
fi

status=0
for t in "${TARGETS[@]}"; do
  seeds=$ROOT/fuzz/corpus/$t
  [ -d "$seeds" ] || { echo "fuzz: no corpus folder fuzz/corpus/$t (unknown target?)" >&2; exit 2; }
  work=$FUZZ_OUT/corpus/$t
  findings=$FUZZ_OUT/findings
  mkdir -p "$work" "$findings"
  echo "==> fuzz $t for ${SECONDS_EACH}s"
  # New inputs go to the first folder (out/); the checked-in seeds are only read.
  # -timeout: a single input running 10 s is a hang. -max_len: RTP/RTSP messages of interest are small.
  set +e
  nice -n "$FUZZ_NICE" "$BRIDGE" -max_total_time="$SECONDS_EACH" -timeout=10 -max_len=8192 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$findings/$t-" "$work" "$seeds" \
    --dotnet-command dotnet "$BIN/Pinhole.Fuzz.dll" "$t" >"$FUZZ_OUT/$t.log" 2>&1
  rc=$?
  set -e
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$FUZZ_OUT/$t.log" | tail -n 3 || true
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FOUND A PROBLEM (exit $rc); log $FUZZ_OUT/$t.log, input:" >&2
    grep -E 'Test unit written|artifact_prefix' "$FUZZ_OUT/$t.log" >&2 || true
    grep -B2 -A25 -E 'Unhandled|Exception' "$FUZZ_OUT/$t.log" | head -n 40 >&2 || true
    status=1
  fi
done
exit $status
