#!/usr/bin/env bash
# Makes the local Debian 12 base image (python3 + python3-venv) that stands in for
# python:3.11-slim where no base image can be pulled, the way Debian's official images are
# made: debootstrap's minbase variant, then apt lists, caches, logs and docs removed and dpkg
# told to keep docs out of later installs.
#
# Cached by a key of this script and its inputs: the root filesystem tarball under
# $IMAGES_CACHE_DIR/base/ and the image in buildah's storage. Nothing is rebuilt while the key
# is unchanged; the image is re-imported from the tarball if buildah's storage was wiped.
# Prints the image name (the one line on stdout), to pass as --build-arg BASE_IMAGE=...
set -euo pipefail

SUITE=${BASE_SUITE:-bookworm}
PACKAGES=${BASE_PACKAGES:-python3,python3-venv}
# Empty: debootstrap's own default mirror.
MIRROR=${BASE_MIRROR:-}
CACHE_DIR=${IMAGES_CACHE_DIR:-/var/cache/sales-quantity-classifier}
# buildah's storage driver: its own configuration's unless STORAGE_DRIVER names one (vfs
# works everywhere; overlay, where the kernel allows it, is faster and smaller on disk).
buildah() { command buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} "$@"; }
# A fixed time stamp for every file and the image, so one key gives one tarball.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

key=$( { cat "$0"; echo "$SUITE $PACKAGES $MIRROR"; } | sha256sum | cut -c1-12)
image="localhost/sales-quantity-classifier-base:${SUITE}-${key}"
tarball="$CACHE_DIR/base/${SUITE}-${key}.tar"

log() { echo "base-image: $*" >&2; }

if buildah inspect --type image "$image" >/dev/null 2>&1; then
  log "cached: $image"
  echo "$image"
  exit 0
fi

if [[ ! -s $tarball ]]; then
  mkdir -p "$CACHE_DIR/base"
  work=$(mktemp -d "$CACHE_DIR/base/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  rootfs="$work/rootfs"
  log "debootstrap --variant=minbase --include=$PACKAGES $SUITE (a few minutes)"
  # shellcheck disable=SC2086  # MIRROR is empty or one word
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" $MIRROR >&2

  # What debuerreotype's slimify and the official images' apt/dpkg settings do.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# No docs, man pages or translations in later installs (as Debian's slim images).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
  find "$rootfs/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian,linda}/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/dev/* \
    "$rootfs"/root/.bash_history "$rootfs"/debootstrap
  : >"$rootfs/etc/machine-id"
  # The host's name and resolver do not belong in an image.
  : >"$rootfs/etc/hostname"
  rm -f "$rootfs/etc/resolv.conf"

  log "packing $tarball"
  tar --sort=name --numeric-owner --xattrs --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
    -C "$rootfs" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi

log "importing $tarball as $image"
ctr=$(buildah from scratch)
buildah add "$ctr" "$tarball" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd /bin/bash --os linux --arch amd64 \
  --label org.opencontainers.image.description="Debian $SUITE minbase with $PACKAGES" "$ctr"
buildah commit --quiet --rm --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$image" >/dev/null
echo "$image"
