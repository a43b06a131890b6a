#!/usr/bin/env bash
# Builds the images with buildah, no Docker engine needed: `make images`, or
#   scripts/images.sh [--tag TAG] [predictor|predictor-sklearn|transformer|monitoring ...]
# (default: all four). Each is tagged localhost/sales-quantity-classifier-PART:TAG (default
# TAG: VERSION-REVISION, e.g. 0.1.0-1a2b3c4) and :latest, and its name printed on stdout, one
# line each. predictor-sklearn is the predictor image's variant with scikit-learn, skops and
# SciPy: the same image name, tags TAG-sklearn and latest-sklearn (docs/images.md).
# After each build it prints (stderr) the image's size against its target, what each layer
# adds and the largest directories of its site-packages (harness/image_sizes.py).
#
# BASE_IMAGE unset: the Debian 12 base is made with debootstrap once and cached
# (scripts/base-image.sh); set it (e.g. python:3.11-slim) where base images can be pulled.
# Layers are cached by buildah (--layers), and the wheels in a cache mount outside the
# images (/var/tmp/buildah-cache here), checked against the lock's hashes at every install:
# a rebuild with unchanged lock files redoes only what changed. SSL_CERT_FILE, when set,
# goes to the build as the secret "ca" for a TLS-intercepting proxy; it is not kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# buildah's storage driver: its own configuration's unless STORAGE_DRIVER names one (vfs
# works everywhere; overlay, where the kernel allows it, is faster and smaller on disk).
buildah() { command buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} "$@"; }
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
PREFIX=${IMAGE_PREFIX:-localhost/sales-quantity-classifier}

version=$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain 2>/dev/null) ]] || revision="$revision-dirty"
# The commit's time, not the clock's: the same revision builds the same labels.
created=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null \
  || date -u +%Y-%m-%dT%H:%M:%SZ)
# The repository's public address: IMAGE_SOURCE, else the origin's if it is a URL (a clone's
# local path says nothing outside this machine).
source_url=${IMAGE_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || true)}
[[ $source_url == https://* ]] || source_url=unknown
tag="$version-${revision:0:7}"

parts=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    predictor|predictor-sklearn|transformer|monitoring) parts+=("$1"); shift ;;
    *) echo "usage: $0 [--tag TAG] [predictor|predictor-sklearn|transformer|monitoring ...]" >&2
       exit 2 ;;
  esac
done
[[ ${#parts[@]} -gt 0 ]] || parts=(predictor predictor-sklearn transformer monitoring)

base=${BASE_IMAGE:-$(scripts/base-image.sh)}
secret=()
[[ -n ${SSL_CERT_FILE:-} && -s ${SSL_CERT_FILE:-} ]] && secret=(--secret "id=ca,src=$SSL_CERT_FILE")

for part in "${parts[@]}"; do
  # A variant (PART-VARIANT) is built from PART's Dockerfile with the variant's lock, and
  # tagged with the variant's suffix.
  dockerfile=${part%%-*}
  suffix=${part#"$dockerfile"}
  image="$PREFIX-$dockerfile"
  echo "images: building $image:$tag$suffix from $base" >&2
  start=$SECONDS
  oci=org.opencontainers.image
  # The Dockerfile's LABEL reads the build args. buildah 1.28 reuses a cached LABEL step
  # whatever the args' values, so the same labels are also set at commit (--label).
  buildah bud --layers --force-rm -f "Dockerfile.$dockerfile" "${secret[@]}" \
    --build-arg "BASE_IMAGE=$base" --build-arg "LOCK=$part" \
    --build-arg "VERSION=$version" --label "$oci.version=$version" \
    --build-arg "REVISION=$revision" --label "$oci.revision=$revision" \
    --build-arg "CREATED=$created" --label "$oci.created=$created" \
    --build-arg "SOURCE=$source_url" --label "$oci.source=$source_url" \
    -t "$image:$tag$suffix" -t "$image:latest$suffix" . >&2
  echo "images: $image:$tag$suffix built in $((SECONDS - start)) s" >&2
  # What it weighs and where: size against target, each layer, the largest packages.
  STORAGE_DRIVER=${STORAGE_DRIVER:-} "${PYTHON:-python3}" -m harness.image_sizes \
    --part "$part" --base "$base" "$image:$tag$suffix" >&2
  echo "$image:$tag$suffix"
done
