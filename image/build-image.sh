#!/usr/bin/env bash
# build-image.sh ARCH (arm64|amd64): the flashable disk image of the edge, docs/image.md.
#   out/image/pinhole-edge-ARCH.img       raw disk image (GPT: FAT boot, ext4 root read-only, ext4 data)
#   out/image/pinhole-edge-ARCH.manifest  every Debian package and version in it (the SBOM) + what apt saw
#   out/image/pinhole-edge-ARCH.build.log this build's log
# Needs root (mmdebstrap --mode=root, chown of the files on the partitions) but no loop devices and no
# mounts: file systems are made from folders (mkfs.ext4 -d, mkfs.vfat + mcopy) and written into the
# image at their offsets. Called by ./build.sh image, which installs the tools first.
# Environment: VERSION (default from git describe, as ./build.sh bundle), DEBIAN_MIRROR,
# DEBIAN_SNAPSHOT (e.g. 20261201T000000Z: use snapshot.debian.org at that time, when reachable),
# PINHOLE_IMAGE_REBUILD_BASE=1 (redo mmdebstrap even when the cached base tarball matches).
set -euo pipefail
arch=${1:-arm64}
case $arch in
  amd64) rid=linux-x64 ;;
  arm64) rid=linux-arm64 ;;
  *) echo "build-image.sh: unknown architecture '$arch' (use arm64 or amd64)" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
IMAGE_SRC=$ROOT/image
OUT=$ROOT/out/image
WORK=$OUT/$arch
IMG=$OUT/pinhole-edge-$arch.img
MANIFEST=$OUT/pinhole-edge-$arch.manifest
CONFIGURATION=${CONFIGURATION:-Release}
mkdir -p "$WORK"
started=$(date +%s)
log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "build-image.sh: run as root (mmdebstrap and the owners of the files in the image need it)" >&2
  exit 1
fi

# Fixed identifiers: the kernel command line and fstab name partitions by them, and a rebuild of
# the same inputs gives the same ids.
DISK_GUID=5f1a3c2e-7b1d-4e8a-9c51-0d6b2f7e1a01
BOOT_PARTUUID=5f1a3c2e-7b1d-4e8a-9c51-0d6b2f7e1a11
ROOT_PARTUUID=5f1a3c2e-7b1d-4e8a-9c51-0d6b2f7e1a12
DATA_PARTUUID=5f1a3c2e-7b1d-4e8a-9c51-0d6b2f7e1a13
ROOT_FSUUID=5f1a3c2e-7b1d-4e8a-9c51-0d6b2f7e1a22
DATA_FSUUID=5f1a3c2e-7b1d-4e8a-9c51-0d6b2f7e1a23
BOOT_VOLID=50494e48   # "PINH"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH

# ---- 1. pinhole-edge, self-contained for the architecture --------------------------------------
version=${VERSION:-$(git -C "$ROOT" describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//' || true)}
[ -n "$version" ] || version=0.0.0-g$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo -dirty)
case $version in [0-9]*) ;; *) version=0.0.0-$version ;; esac
numeric=${version%%[-+]*}
[[ $numeric =~ ^[0-9]{1,5}(\.[0-9]{1,5}){0,3}$ ]] || numeric=0.0.0
log "publish pinhole-edge $version for $rid (self-contained)"
rm -rf "$WORK/publish"
dotnet publish "$ROOT/src/EdgeHost/Pinhole.EdgeHost.csproj" -c "$CONFIGURATION" -r "$rid" --self-contained true \
  -p:Version="$numeric" -p:InformationalVersion="$version" -v quiet -nologo -o "$WORK/publish"
[ -x "$WORK/publish/pinhole-edge" ] || { echo "build-image.sh: publish made no pinhole-edge" >&2; exit 1; }

# ---- 2. the Debian base (cached as a tarball keyed by everything that goes into it) -------------
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
snapshot_opts=()
if [ -n "${DEBIAN_SNAPSHOT:-}" ]; then
  [[ $DEBIAN_SNAPSHOT =~ ^[0-9]{8}T[0-9]{6}Z$ ]] ||
    { echo "build-image.sh: DEBIAN_SNAPSHOT='$DEBIAN_SNAPSHOT' is not a snapshot.debian.org time like 20261201T000000Z" >&2; exit 2; }
  mirror=http://snapshot.debian.org/archive/debian/$DEBIAN_SNAPSHOT
  security=http://snapshot.debian.org/archive/debian-security/$DEBIAN_SNAPSHOT
  # A snapshot's Release files are past their Valid-Until (security's lasts a week): expected here.
  snapshot_opts=(--aptopt='Acquire::Check-Valid-Until "false"')
fi
packages=(systemd-sysv udev dbus systemd-resolved systemd-timesyncd kmod procps iproute2
  ca-certificates libicu72 ffmpeg libgpiod2 jq dosfstools e2fsprogs fdisk openssh-server wpasupplicant)
case $arch in
  amd64) packages+=(linux-image-amd64 systemd-boot-efi) ;;
  arm64) packages+=(linux-image-arm64 raspi-firmware firmware-brcm80211) ;;
esac
components=main
[ "$arch" = arm64 ] && components="main contrib non-free non-free-firmware"
sources=("deb $mirror bookworm $components" "deb $mirror bookworm-updates $components" "deb $security bookworm-security $components")
key=$(printf '%s\n' "$arch" "${packages[*]}" "${sources[@]}" "$(mmdebstrap --version)" | sha256sum | cut -c1-16)
base=$WORK/base-$key.tar
if [ ! -s "$base" ] || [ -n "${PINHOLE_IMAGE_REBUILD_BASE:-}" ]; then
  log "mmdebstrap bookworm $arch: ${packages[*]}"
  rm -f "$WORK"/base-*.tar "$WORK"/apt-release-*.txt
  hooks=()
  # raspi-firmware's kernel hook refuses to run unless /boot/firmware is a mount point; give it a
  # tmpfs there while packages install (the build copies the files to the boot partition itself).
  # A failed or interrupted mmdebstrap never reaches the customize hook: unmount it on the way out.
  [ "$arch" = arm64 ] && trap 'awk '"'"'$1 == "pinhole-fw" && $2 ~ "^/tmp/mmdebstrap\\." { print $2 }'"'"' /proc/mounts | while read -r m; do umount "$m"; done' EXIT
  [ "$arch" = arm64 ] && hooks=(--essential-hook='mkdir -p "$1/boot/firmware" && mount -t tmpfs pinhole-fw "$1/boot/firmware"'
    --customize-hook='umount "$1/boot/firmware"')
  # The customize hook keeps what apt saw (each suite's Release date) before mmdebstrap's cleanup.
  mmdebstrap "${hooks[@]}" "${snapshot_opts[@]}" --mode=root --format=tar --variant=minbase --arch="$arch" --include="$(IFS=,; echo "${packages[*]}")" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook="for f in \"\$1\"/var/lib/apt/lists/*Release; do grep -E '^(Origin|Suite|Version|Date):' \"\$f\" | tr '\n' ' '; echo; done > '$WORK/apt-release-$key.txt'" \
    bookworm "$base.partial" "${sources[@]}"
  mv "$base.partial" "$base"
fi

# ---- 3. the root file system --------------------------------------------------------------------
rootfs=$WORK/root
data=$WORK/data
boot=$WORK/boot
rm -rf "$rootfs" "$data" "$boot"
mkdir -p "$rootfs" "$data" "$boot/pinhole"
log "unpack the base"
tar -C "$rootfs" -xpf "$base"

log "install pinhole-edge $version as /opt/pinhole/releases/$version (+ current, pinhole-launch, units)"
mkdir -p "$rootfs/opt/pinhole/releases" "$rootfs/usr/lib/pinhole" "$rootfs/etc/pinhole" "$rootfs/var/lib/pinhole" "$rootfs/boot/firmware" "$rootfs/data"
cp -a "$WORK/publish" "$rootfs/opt/pinhole/releases/$version"
ln -sfn "releases/$version" "$rootfs/opt/pinhole/current"
install -m 0755 "$IMAGE_SRC/pinhole-launch" "$rootfs/usr/lib/pinhole/pinhole-launch"
install -m 0755 "$IMAGE_SRC/pinhole-firstboot" "$rootfs/usr/lib/pinhole/pinhole-firstboot"
install -m 0755 "$IMAGE_SRC/pinhole-growdata" "$rootfs/usr/lib/pinhole/pinhole-growdata"
install -m 0644 "$IMAGE_SRC/pinhole-edge.service" "$IMAGE_SRC/pinhole-firstboot.service" "$rootfs/etc/systemd/system/"
install -m 0644 "$IMAGE_SRC/pinhole-edge.sysusers.conf" "$rootfs/usr/lib/sysusers.d/pinhole-edge.conf"
cp -a "$IMAGE_SRC/rootfs/." "$rootfs/"
systemd-sysusers --root="$rootfs" >/dev/null
systemctl --root="$rootfs" enable pinhole-firstboot.service pinhole-edge.service systemd-networkd.service systemd-resolved.service systemd-timesyncd.service >/dev/null 2>&1
# ssh runs only when the user put pinhole/authorized_keys on the boot partition (the drop-in), with
# host keys made on the device's first boot: the ones the package made now would be the same on
# every device.
rm -f "$rootfs"/etc/ssh/ssh_host_*
ln -sfn /run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
echo pinhole > "$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$rootfs/etc/hosts"
# An empty machine-id: systemd makes one per boot on the read-only root (docs/image.md).
: > "$rootfs/etc/machine-id"
uid=$(awk -F: '$1=="pinhole"{print $3}' "$rootfs/etc/passwd")
gid=$(awk -F: '$1=="pinhole"{print $3}' "$rootfs/etc/group")
[ -n "$uid" ] && [ -n "$gid" ] || { echo "build-image.sh: systemd-sysusers made no pinhole user" >&2; exit 1; }

# What changes at run time lives on the data partition, bind-mounted back (rootfs/etc/fstab):
# /opt/pinhole (updates add releases), /etc/pinhole (edge.json, rewritten by the local page),
# /var/lib/pinhole (dataDir), /var/lib/systemd (timesync clock, random seed), and /data/system
# (root-only: ssh host keys, authorized_keys, Wi-Fi, hostname).
log "move the writable parts to the data partition"
mkdir -p "$data/opt" "$data/etc" "$data/state" "$data/systemd" "$data/system"
cp -a "$rootfs/opt/pinhole/." "$data/opt/"
cp -a "$rootfs/var/lib/systemd/." "$data/systemd/" 2>/dev/null || true
rm -rf "$rootfs/opt/pinhole/"* "$rootfs/var/lib/systemd/"*
chown -R "$uid:$gid" "$data/opt" "$data/etc" "$data/state"
chmod 0750 "$data/etc" "$data/state"
chmod 0700 "$data/system"
cp "$IMAGE_SRC/edge.example.json" "$data/system/edge.example.json"

# ---- 4. the boot partition ----------------------------------------------------------------------
log "boot partition"
kernel=$(cd "$rootfs/boot" && ls vmlinuz-* | sort -V | tail -n1)
kver=${kernel#vmlinuz-}
# The Pi's boot ROM reads only MBR partition tables, whose PARTUUIDs are DISKID-NN.
[ "$arch" = arm64 ] && ROOT_PARTUUID=$BOOT_VOLID-02
cmdline="root=PARTUUID=$ROOT_PARTUUID ro rootwait fsck.repair=yes"
case $arch in
  amd64)
    mkdir -p "$boot/EFI/BOOT" "$boot/loader/entries"
    cp "$rootfs/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$boot/EFI/BOOT/BOOTX64.EFI"
    cp "$rootfs/boot/vmlinuz-$kver" "$boot/vmlinuz"
    cp "$rootfs/boot/initrd.img-$kver" "$boot/initrd.img"
    printf 'default pinhole.conf\ntimeout 0\neditor no\n' > "$boot/loader/loader.conf"
    printf 'title Pinhole edge\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s console=tty0 console=ttyS0,115200 loglevel=4\n' "$cmdline" \
      > "$boot/loader/entries/pinhole.conf"
    ;;
  arm64)
    cp -a "$rootfs/usr/lib/raspi-firmware/." "$boot/"
    cp "$rootfs/boot/vmlinuz-$kver" "$boot/vmlinuz"
    cp "$rootfs/boot/initrd.img-$kver" "$boot/initrd.img"
    for dtb in "$rootfs/usr/lib/linux-image-$kver/broadcom/"bcm27*-rpi-*.dtb "$rootfs/usr/lib/linux-image-$kver/broadcom/"bcm2837-rpi-*.dtb; do
      [ -f "$dtb" ] && cp "$dtb" "$boot/"
    done
    cp "$IMAGE_SRC/raspi/config.txt" "$boot/config.txt"
    printf '%s console=serial0,115200 console=tty1\n' "$cmdline" > "$boot/cmdline.txt"
    ;;
esac
cp "$IMAGE_SRC/boot-README.txt" "$boot/pinhole/README.txt"
cp "$IMAGE_SRC/edge.example.json" "$boot/pinhole/edge.json.example"

# ---- 5. the manifest (SBOM) ---------------------------------------------------------------------
log "manifest"
{
  echo "# pinhole-edge-$arch.img: Debian bookworm ($arch) + pinhole-edge $version ($rid, self-contained)"
  echo "# built $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown); kernel $kver"
  echo "# sources: ${sources[*]}"
  echo "# apt saw (each suite's Release file):"
  sed 's/^/#   /' "$WORK/apt-release-$key.txt" 2>/dev/null || true
  echo "# .NET runtime (self-contained in the release): $(sed -n 's/.*"Microsoft.NETCore.App", *"version": *"\([^"]*\)".*/\1/p' "$WORK/publish/pinhole-edge.runtimeconfig.json" 2>/dev/null | head -n1)$(grep -o '"version": *"[^"]*"' "$WORK/publish/pinhole-edge.runtimeconfig.json" 2>/dev/null | head -n1)"
  echo "# package<TAB>version<TAB>architecture"
  dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Package}\t${Version}\t${Architecture}\n' | sort
} > "$MANIFEST"

# ---- 6. file systems and the disk ---------------------------------------------------------------
mib() { echo $(( ($1 + 1048575) / 1048576 )); }
boot_mib=256
root_mib=$(( $(mib "$(du -sb "$rootfs" | cut -f1)") * 115 / 100 + 128 ))
data_mib=$(( $(mib "$(du -sb "$data" | cut -f1)") + 512 ))
log "file systems: boot ${boot_mib} MiB, root ${root_mib} MiB, data ${data_mib} MiB"
rm -f "$WORK"/*.fs
mkfs.vfat -F 32 -n PINHOLE -i "$BOOT_VOLID" -C "$WORK/boot.fs" $((boot_mib * 1024)) >/dev/null
mcopy -s -p -m -i "$WORK/boot.fs" "$boot"/* ::/
mkfs.ext4 -q -L pinhole-root -U "$ROOT_FSUUID" -E "hash_seed=$ROOT_FSUUID" -d "$rootfs" "$WORK/root.fs" "${root_mib}M"
mkfs.ext4 -q -L pinhole-data -U "$DATA_FSUUID" -E "hash_seed=$DATA_FSUUID" -d "$data" "$WORK/data.fs" "${data_mib}M"

log "disk image $IMG"
# GPT, 1 MiB aligned: 1 boot (EFI system partition type on amd64; basic data on the Pi, which reads
# any FAT partition first on the disk), 2 root, 3 data.
boot_type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
[ "$arch" = arm64 ] && boot_type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
linux_type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
total_mib=$((1 + boot_mib + root_mib + data_mib + 1))
rm -f "$IMG"
truncate -s "${total_mib}M" "$IMG"
if [ "$arch" = arm64 ]; then
  # The Pi's boot ROM reads MBR only: a DOS partition table, with the same partitions.
  sfdisk -q "$IMG" <<EOF
label: dos
label-id: 0x${BOOT_VOLID}
start=1MiB, size=${boot_mib}MiB, type=c
size=${root_mib}MiB, type=83
size=${data_mib}MiB, type=83
EOF
else
  sfdisk -q "$IMG" <<EOF
label: gpt
label-id: $DISK_GUID
start=1MiB, size=${boot_mib}MiB, type=$boot_type, uuid=$BOOT_PARTUUID, name=pinhole-boot
size=${root_mib}MiB, type=$linux_type, uuid=$ROOT_PARTUUID, name=pinhole-root
size=${data_mib}MiB, type=$linux_type, uuid=$DATA_PARTUUID, name=pinhole-data
EOF
fi
dd if="$WORK/boot.fs" of="$IMG" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$WORK/root.fs" of="$IMG" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none
dd if="$WORK/data.fs" of="$IMG" bs=1M seek=$((1 + boot_mib + root_mib)) conv=notrunc,sparse status=none
rm -f "$WORK"/*.fs
sfdisk -d "$IMG"

elapsed=$(( $(date +%s) - started ))
log "done in ${elapsed}s: $IMG $(du -h --apparent-size "$IMG" | cut -f1) (allocated $(du -h "$IMG" | cut -f1)), manifest $(($(grep -vc '^#' "$MANIFEST"))) packages"
