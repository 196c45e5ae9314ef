#!/usr/bin/env bash
# `make docker-base`: a Debian bookworm base image built locally, for machines that cannot pull
# python:3.11-slim-bookworm (no registry, air-gapped). Debian's own packages only: debootstrap
# --variant=minbase plus python3.11, python3.11-venv (pip/setuptools wheels for `python3.11 -m venv`)
# and git (the lineage tags record the commit), imported as one layer with `<engine> import`.
#
#   docker/build-base.sh ENGINE TAG
#
# The Debian mirror is DEBIAN_MIRROR (default: debootstrap's own, deb.debian.org); a proxy comes from
# http_proxy as usual. Needs root (debootstrap), like `apt-get install`.
set -euo pipefail
engine=${1:?usage: build-base.sh ENGINE TAG}
tag=${2:?usage: build-base.sh ENGINE TAG}
suite=bookworm
packages="python3.11 python3.11-venv git ca-certificates"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null; then
  echo "build-base.sh: debootstrap is not installed: apt-get install debootstrap (or run make container-test)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "build-base.sh: debootstrap needs root: run it as root (sudo make docker-base)" >&2
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/uplr-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/build.log
fail() { tail -n 20 "$log" >&2; echo "build-base.sh: $1" >&2; exit 1; }
debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$log" 2>&1 || fail "debootstrap failed (mirror $mirror)"
# the packages through apt in the new system (debootstrap --include leaves python3.11-venv unconfigured)
cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf"
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive chroot "$work/rootfs" sh -c \
  "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages && apt-get clean" >>"$log" 2>&1 \
  || fail "apt-get install $packages failed in the new root filesystem"
: >"$work/rootfs/etc/resolv.conf"  # the engine provides both at run time
rm -f "$work/rootfs/etc/hostname"
# what the base holds, for the record (also a label below): package=version, one per line
chroot "$work/rootfs" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort >"$work/packages.txt"
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin "$work/rootfs/var/cache/apt/archives/"*.deb \
  "$work/rootfs/var/log/"*.log "$work/rootfs/var/log/apt/"*
python_version=$(chroot "$work/rootfs" python3.11 -c 'import platform; print(platform.python_version())')
packages_sha=$(sha256sum "$work/packages.txt" | cut -d ' ' -f 1)
tar --numeric-owner -C "$work/rootfs" -c . | "$engine" import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.opencontainers.image.title=uplr-base" \
  --change "LABEL org.opencontainers.image.description=\"debootstrap --variant=minbase $suite + ${packages// /, }\"" \
  --change "LABEL org.uplr.base.recipe=debootstrap-minbase-$suite" \
  --change "LABEL org.uplr.base.python=$python_version" \
  --change "LABEL org.uplr.base.dpkg-list.sha256=$packages_sha" \
  - "$tag" >/dev/null
echo "build-base.sh: $tag ($("$engine" image inspect --format '{{.Id}}' "$tag")), Python $python_version, $(wc -l <"$work/packages.txt") Debian packages"
