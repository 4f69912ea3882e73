#!/usr/bin/env bash
# A Debian sid chroot with CPython 3.14 and 3.15 (and GCC 16), for the CPythons
# this bookworm image cannot install (their builds need glibc 2.38+).
#
#   scripts/sid-chroot.sh setup        builds the chroot once (about 2 minutes,
#                                      200 MB; later calls only check it)
#   scripts/sid-chroot.sh run CMD...   runs CMD inside, in the repository
#                                      (mounted at /pybridge), as root
#   scripts/sid-chroot.sh remove       deletes the chroot
#
# PYB_SID_ROOT chooses where it lives (default /var/tmp/pybridge-sid).
#
# Mounts (proc, sys, /dev, the repository, the host's Rust toolchain read-only,
# cargo's download cache) are made inside a private mount namespace
# (unshare), so they are invisible to every other process and vanish when the
# command ends, however it ends; a trap also takes them down in order. Nothing
# is ever deleted while anything is mounted below the chroot: a recursive
# delete through a bind mount of /dev or of the repository would delete the
# host's files (remove checks /proc/self/mounts and deletes with
# --one-file-system).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
source scripts/lib.sh
SID="${PYB_SID_ROOT:-/var/tmp/pybridge-sid}"
# The CPythons: the sid versions of scripts/python-versions.
SID_PYTHONS="$(pyb_python_versions sid)"
# Bumped when the toolchain's package list changes, so an older chroot is
# completed; a CPython added to scripts/python-versions is noticed by its
# missing executable (has_pythons).
STAMP="$SID/.pybridge-ready-3"
PACKAGES="gcc g++ make cmake pkg-config ca-certificates gdb procps libicu-dev git"
for minor in $SID_PYTHONS; do
  PACKAGES="$PACKAGES python$minor python$minor-dev libpython$minor-dev python$minor-venv"
done
RUSTUP_HOME_HOST="${RUSTUP_HOME:-$HOME/.rustup}"
CARGO_HOME_HOST="${CARGO_HOME:-$HOME/.cargo}"

die() { echo "error: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

mounted_below() { # prints mount points at or below $SID
  awk -v root="$SID" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts
}

# Runs "$@" inside the chroot's private mount namespace (see the top).
inside() {
  as_root unshare --mount --propagation private -- bash "$REPO/scripts/sid-chroot.sh" __mounted "$@"
}

# Only ever called through unshare: mounts, runs the command, unmounts.
mounted() {
  points=()
  unmount_all() {
    local i
    for ((i = ${#points[@]} - 1; i >= 0; i--)); do
      umount -R "${points[$i]}" 2>/dev/null || umount -l "${points[$i]}" 2>/dev/null || true
    done
  }
  trap unmount_all EXIT
  bind() { # source target [ro]
    mkdir -p "$2"
    mount --rbind "$1" "$2"
    mount --make-rslave "$2"
    points+=("$2")
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
  }
  mount -t proc proc "$SID/proc"; points+=("$SID/proc")
  mount -t sysfs sys "$SID/sys"; points+=("$SID/sys")
  bind /dev "$SID/dev"
  bind "$REPO" "$SID/pybridge"
  bind "$RUSTUP_HOME_HOST" "$SID/opt/rustup" ro
  mkdir -p "$CARGO_HOME_HOST/registry" "$CARGO_HOME_HOST/git"
  bind "$CARGO_HOME_HOST/registry" "$SID/opt/cargo/registry"
  bind "$CARGO_HOME_HOST/git" "$SID/opt/cargo/git"
  cp /etc/resolv.conf "$SID/etc/resolv.conf"
  local toolchain
  toolchain="$(ls -d "$RUSTUP_HOME_HOST"/toolchains/stable-* | head -1)"
  local nightly
  nightly="$(ls -d "$RUSTUP_HOME_HOST"/toolchains/nightly-* 2>/dev/null | head -1 || true)"
  # The project's own switches (PYB_SKIP_*, PYB_SID_PYTHONS, ...) pass through.
  local passed=()
  while IFS= read -r variable; do passed+=("$variable"); done < <(env | grep '^PYB_' || true)
  local status=0
  chroot "$SID" /usr/bin/env -i "${passed[@]}" \
    HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 CI="${CI:-}" \
    PATH="/opt/cargo/bin:/opt/rustup/toolchains/$(basename "$toolchain")/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
    RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo RUSTUP_TOOLCHAIN="$(basename "$toolchain")" \
    PYB_NIGHTLY="${nightly:+/opt/rustup/toolchains/$(basename "$nightly")}" \
    PYB_IN_SID_CHROOT=1 \
    bash -c 'cd /pybridge && exec "$@"' bash "$@" || status=$?
  return $status
}

has_pythons() {
  local minor
  for minor in $SID_PYTHONS; do
    [ -x "$SID/usr/bin/python$minor" ] || return 1
  done
}

setup() {
  if [ -f "$STAMP" ] && has_pythons; then
    return 0
  fi
  local started=$SECONDS
  command -v debootstrap >/dev/null 2>&1 || {
    echo "installing debootstrap (once)..."
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q debootstrap </dev/null ||
      { DEBIAN_FRONTEND=noninteractive as_root apt-get update -q </dev/null &&
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q debootstrap </dev/null; }
  }
  if [ ! -x "$SID/usr/bin/apt-get" ]; then
    [ -z "$(mounted_below)" ] || die "something is mounted below $SID; not touching it"
    if [ -e "$SID" ]; then as_root rm -rf --one-file-system "$SID"; fi
    echo "== debootstrap sid into $SID"
    as_root debootstrap --variant=minbase sid "$SID" http://deb.debian.org/debian
  fi
  # The mirror may serve a snapshot whose Release files have expired.
  echo 'Acquire::Check-Valid-Until "false";' | as_root tee "$SID/etc/apt/apt.conf.d/99pybridge" >/dev/null
  # HTTPS (crates.io, PyPI) goes through the same proxy as on the host: trust
  # the CAs the host added locally.
  as_root mkdir -p "$SID/usr/local/share/ca-certificates" "$SID/opt/cargo/bin" "$SID/opt/rustup" "$SID/pybridge"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    as_root cp /usr/local/share/ca-certificates/*.crt "$SID/usr/local/share/ca-certificates/"
  fi
  # cargo-nextest: the host's binary runs there too (sid's glibc is newer).
  as_root cp "$(command -v cargo-nextest)" "$SID/opt/cargo/bin/"
  echo "== installing CPython $SID_PYTHONS and the toolchain in the chroot"
  # shellcheck disable=SC2086
  inside bash -c "export DEBIAN_FRONTEND=noninteractive;
    apt-get update -q </dev/null &&
    apt-get install -y -q --no-install-recommends $(echo $PACKAGES) </dev/null &&
    update-ca-certificates >/dev/null"
  as_root touch "$STAMP"
  echo "== sid chroot ready in $((SECONDS - started)) s ($(du -sh --one-file-system "$SID" | cut -f1))"
}

remove() {
  [ -z "$(mounted_below)" ] || die "still mounted below $SID: $(mounted_below | tr '\n' ' ')"
  as_root rm -rf --one-file-system "$SID"
}

case "${1:-}" in
  setup) setup ;;
  run) shift; setup; inside "$@" ;;
  remove) remove ;;
  __mounted) shift; mounted "$@" ;;
  *) die "usage: $0 setup | run CMD... | remove" ;;
esac
