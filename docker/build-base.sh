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
packages=python3.11,python3.11-venv,git,ca-certificates
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
debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; echo "build-base.sh: debootstrap failed (mirror $mirror)" >&2; exit 1; }
# what the base holds, for the record (also a label below): package=version, one per line
chroot "$work/rootfs" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort >"$work/packages.txt"
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin "$work/rootfs/var/cache/apt/archives/"*.deb
python_version=$(chroot "$work/rootfs" python3.11 -c 'import platform; print(platform.python_version())')
packages_sha=$(sha256sum "$work/packages.txt" | cut -d ' ' -f 1)
tar --numeric-owner -C "$work/rootfs" -c . | "$engine" import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.opencontainers.image.title=uplr-base org.opencontainers.image.description=\"debootstrap --variant=minbase $suite + $packages\" org.uplr.base.recipe=debootstrap-minbase-$suite org.uplr.base.python=$python_version org.uplr.base.dpkg-list.sha256=$packages_sha" \
  - "$tag" >/dev/null
echo "build-base.sh: $tag ($("$engine" image inspect --format '{{.Id}}' "$tag")), Python $python_version, $(wc -l <"$work/packages.txt") Debian packages"
