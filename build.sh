#!/usr/bin/env bash
# Pinhole's one entry point. See README.md.
#   ./build.sh          install missing Debian packages, restore, build, publish to out/edge and out/relay
#   ./build.sh test     all of the above, then every test; exit 0 only when all pass
#   ./build.sh demo     a local demo: test camera, Mosquitto, relay and edge; prints the viewer URLs
#   ./build.sh bench    runs the benchmarks and writes docs/benchmarks.md
#   ./build.sh bundle   signed update bundles of the edge for linux-arm64 and linux-x64 in out/bundles
#   ./build.sh fuzz [TARGET|all] [SECONDS]   libFuzzer over the network parsers (docs/fuzzing.md)
#   ./build.sh image [arm64|amd64]   the flashable disk image in out/image (docs/image.md)
#   ./build.sh image-test            builds (or reuses) the amd64 image and boots it under QEMU (docs/image.md)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD
CONFIGURATION=${CONFIGURATION:-Release}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Real peers the tests and the demo talk to, and the tools the build uses. All from Debian 12.
APT_PACKAGES=(
  mosquitto mosquitto-clients
  ffmpeg
  python3 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium chromium-driver
  vlc-bin vlc-plugin-base
  iproute2 iptables procps psmisc curl ca-certificates openssl systemd
  jq  # tests of image/pinhole-firstboot (the image's first-boot script parses JSON with it)
  coturn
  haproxy
  postgresql
  clang libclang-rt-14-dev
)

# Only for `./build.sh image` and `image-test` (a plain build or `./build.sh test` does not need them).
IMAGE_APT_PACKAGES=(
  mmdebstrap dosfstools mtools fdisk e2fsprogs
  qemu-system-x86 ovmf qemu-user-static binfmt-support arch-test
  ffmpeg git
)

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

install_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # npm (uPlot for the relay's charts is vendored from the npm registry at build time): Debian's
  # package only when no npm is on PATH (a Node.js from elsewhere conflicts with Debian's npm).
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: missing Debian packages (run as root to install them): ${missing[*]}" >&2
    echo "build.sh: tests that need them will be skipped with a reason" >&2
    return 0
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system-wide mosquitto on 1883 when it can; tests start their own on free ports.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
}

install_image_packages() {
  local missing=() p
  for p in "${IMAGE_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: the image needs these Debian packages (run as root to install them): ${missing[*]}" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# mmdebstrap runs the arm64 packages' scripts through qemu-aarch64-static, which the kernel calls via
# binfmt_misc; a container or a machine booted without binfmt-support's unit has it unmounted.
enable_arm64_emulation() {
  if ! arch-test arm64 >/dev/null 2>&1; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
  fi
  arch-test arm64 >/dev/null 2>&1 ||
    { echo "build.sh: image arm64: this machine cannot run arm64 programs through qemu-user-static (arch-test arm64: $(arch-test arm64 2>&1))" >&2; exit 1; }
}

# ./build.sh image ARCH: image/build-image.sh, its output also in out/image/pinhole-edge-ARCH.build.log.
image() {
  local arch=${1:-arm64}
  case $arch in arm64|amd64) ;; *) echo "build.sh: image: unknown architecture '$arch' (use arm64 or amd64)" >&2; exit 2 ;; esac
  install_image_packages
  [ "$arch" = arm64 ] && enable_arm64_emulation
  mkdir -p out/image
  log "image $arch (log: out/image/pinhole-edge-$arch.build.log)"
  "$ROOT/image/build-image.sh" "$arch" 2>&1 | tee "out/image/pinhole-edge-$arch.build.log"
  return "${PIPESTATUS[0]}"
}

# ./build.sh image-test: the amd64 image booted under qemu-system-x86_64 (TCG) against a relay on this
# host, and the arm64 image's checks when it exists (tests/Integration.Tests/Image). Reuses an image
# already in out/image unless PINHOLE_IMAGE_REBUILD=1.
image_test() {
  build
  install_image_packages
  if [ ! -f out/image/pinhole-edge-amd64.img ] || [ -n "${PINHOLE_IMAGE_REBUILD:-}" ]; then image amd64; fi
  log "image tests"
  PINHOLE_IMAGE_TEST=1 TEST_FILTER="Category=Image" run_tests_of tests/Integration.Tests/Pinhole.Integration.Tests.csproj
}

build() {
  install_packages
  if ! command -v dotnet >/dev/null 2>&1; then
    echo "build.sh: the .NET 10 SDK is required (dotnet not found on PATH)" >&2
    exit 1
  fi
  log "restore"
  dotnet restore Edge.sln -v quiet
  log "build ($CONFIGURATION)"
  dotnet build Edge.sln -c "$CONFIGURATION" --no-restore -v quiet -nologo -clp:NoSummary
  log "publish to out/edge and out/relay (framework-dependent)"
  rm -rf out/edge out/relay
  dotnet publish src/EdgeHost/Pinhole.EdgeHost.csproj -c "$CONFIGURATION" --no-restore -v quiet -nologo -o out/edge
  dotnet publish src/Relay/Pinhole.Relay.csproj -c "$CONFIGURATION" --no-restore -v quiet -nologo -o out/relay
}

# Runs each test assembly in turn (the peers they start are heavy on 2 cores), keeps going after a
# failure so the summary is complete, and ends with one "N passed, N failed, N skipped" line.
run_tests() {
  run_tests_of tests/*/*.csproj
}

run_tests_of() {
  local results=$ROOT/TestResults
  rm -rf "$results"
  mkdir -p "$results"
  local failed_projects=() proj name
  for proj in "$@"; do
    name=$(basename "$proj" .csproj)
    [ "$name" = "Pinhole.Testing" ] && continue
    log "test $name"
    # grep -a: a test's log line can hold a byte that is not text; without -a grep stops listing there.
    if ! dotnet test "$proj" -c "$CONFIGURATION" --no-build -nologo \
        --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
        --logger "console;verbosity=normal" ${TEST_FILTER:+--filter "$TEST_FILTER"} 2>&1 \
        | grep -a -v -E '^\s*$|^Results File:|^A total of' ; then
      true
    fi
    grep -q 'outcome="Completed"' "$results/$name.trx" 2>/dev/null || failed_projects+=("$name")
  done
  local passed=0 failed=0 skipped=0 trx
  for trx in "$results"/*.trx; do
    [ -f "$trx" ] || continue
    local counters
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n1)
    passed=$((passed + $(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")))
    failed=$((failed + $(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")))
    # Skipped tests are counted in total but not in executed (notExecuted stays 0 for xunit skips).
    skipped=$((skipped + $(sed -E 's/.* total="([0-9]+)".*/\1/' <<<"$counters") - $(sed -E 's/.* executed="([0-9]+)".*/\1/' <<<"$counters")))
  done
  echo
  if [ "$failed" -gt 0 ] || [ ${#failed_projects[@]} -gt 0 ]; then
    /usr/bin/python3 "$ROOT/scripts/failed-tests.py" "$results"/*.trx || true
  fi
  [ ${#failed_projects[@]} -gt 0 ] && echo "failing test assemblies: ${failed_projects[*]}"
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  [ ${#failed_projects[@]} -eq 0 ] && [ "$failed" -eq 0 ]
}

# Signed update bundles (docs/updates.md): the edge published self-contained for each architecture,
# packed by the relay's CLI. VERSION (default: from git describe) and RELEASE_KEY (default
# out/release-keys/release.key, made on first use; keep it safe and off the relay) may be set.
bundle() {
  install_packages
  # A release tag (v1.2.0, or v1.2.0-3-gabc1234 after it); with no tag, 0.0.0-g<commit> (a bare commit
  # hash such as 0731523 would pass for a version number and break the assembly version).
  local version=${VERSION:-$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//' || true)}
  [ -n "$version" ] || version=0.0.0-g$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)
  local key=${RELEASE_KEY:-$ROOT/out/release-keys/release.key} rid stage
  case $version in [0-9]*) ;; *) version=0.0.0-$version ;; esac
  # The assembly version takes only numbers (major[.minor[.build[.revision]]]); the full string goes to
  # InformationalVersion and into the bundle's manifest.
  local numeric=${version%%[-+]*}
  [[ $numeric =~ ^[0-9]{1,5}(\.[0-9]{1,5}){0,3}$ ]] || numeric=0.0.0
  log "restore and build the relay CLI"
  dotnet build src/Relay/Pinhole.Relay.csproj -c "$CONFIGURATION" -v quiet -nologo -clp:NoSummary
  local relay=(dotnet "src/Relay/bin/$CONFIGURATION/net10.0/pinhole-relay.dll")
  if [ ! -f "$key" ]; then
    log "no release key at $key: making one (release.pub goes to the devices' update.publicKey)"
    "${relay[@]}" releases keygen --out "$(dirname "$key")"
  fi
  mkdir -p out/bundles
  for rid in linux-arm64 linux-x64; do
    stage=out/bundle-stage/$rid
    rm -rf "$stage"
    log "publish pinhole-edge $version for $rid (self-contained)"
    dotnet publish src/EdgeHost/Pinhole.EdgeHost.csproj -c "$CONFIGURATION" -r "$rid" --self-contained true \
      -p:Version="$numeric" -p:InformationalVersion="$version" -v quiet -nologo -o "$stage"
    "${relay[@]}" releases pack "$stage" --version "$version" --key "$key" --out "out/bundles/pinhole-edge-$version-$rid.bundle"
  done
  log "bundles in out/bundles; store one on a relay with: pinhole-relay releases add FILE --config relay.json"
}

case "${1:-build}" in
  build) build ;;
  test) build; run_tests ;;
  demo) build; exec "$ROOT/scripts/demo.sh" ;;
  bundle) bundle ;;
  bench) build; dotnet run --project bench/Pinhole.Benchmarks -c "$CONFIGURATION" --no-build -- --out docs/benchmarks.md ;;
  fuzz) build; exec "$ROOT/fuzz/fuzz.sh" "${2:-all}" "${3:-60}" ;;
  image) image "${2:-arm64}" ;;
  image-test) image_test ;;
  -h|--help|help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "build.sh: unknown command '$1' (use: build, test, demo, bench, bundle, fuzz, image, image-test)" >&2; exit 2 ;;
esac
