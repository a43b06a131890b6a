#!/usr/bin/env bash
# The release pipeline: `make release`, or
#   scripts/release.sh [--dry-run] [--only STEP,...] [--model_version N]
#                      [--canary MODEL_VERSION] [--canary_percent N] [--predictor_variant sklearn]
# Steps, in order: test (make test) -> build (scripts/images.sh) -> tag (VERSION and
# VERSION-REVISION, under $RELEASE_REGISTRY) -> push -> deploy (helm upgrade --install with the
# registry version to serve pinned: --model_version, or the version the alias
# $RELEASE_MODEL_ALIAS names in MLflow now, resolved here once; printed only where the helm
# command or the chart is missing) -> canary (python -m rollout start MODEL_VERSION, with
# --canary only; printed only while rollout/ is missing). Each step says what it does and the
# first failure stops the release. --dry-run prints the commands and runs none.
# --predictor_variant sklearn releases the predictor image's -sklearn variant (scikit-learn,
# skops and SciPy, for a model logged without its NumPy scorer artifact) in place of the
# default: built, tagged and pushed as VERSION-sklearn and VERSION-REVISION-sklearn, deployed
# with predictor.image.tag set to the latter (docs/images.md).
#
# Environment: RELEASE_REGISTRY (required for tag/push/deploy, e.g. registry.example:5000/team),
# RELEASE_TLS_VERIFY (true; false for a plain-HTTP registry such as a local test one),
# RELEASE_NAMESPACE (helm's namespace, default sales-quantity-classifier), RELEASE_MODEL_ALIAS
# (default production) and MLFLOW_TRACKING_URI (for deploy without --model_version, and the canary),
# RELEASE_PYTHON (default .venv/bin/python), and those of scripts/images.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# buildah's storage driver: its own configuration's unless STORAGE_DRIVER names one (vfs
# works everywhere; overlay, where the kernel allows it, is faster and smaller on disk).
buildah() { command buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} "$@"; }
PARTS=(predictor transformer monitoring)
LOCAL=${IMAGE_PREFIX:-localhost/sales-quantity-classifier}
REGISTRY=${RELEASE_REGISTRY:-}
TLS_VERIFY=${RELEASE_TLS_VERIFY:-true}
NAMESPACE=${RELEASE_NAMESPACE:-sales-quantity-classifier}
MODEL=sales-quantity-classifier
# The project's interpreter (make's virtualenv), for the alias and the canary.
PYTHON=${RELEASE_PYTHON:-.venv/bin/python}
MODEL_ALIAS=${RELEASE_MODEL_ALIAS:-production}
ALL_STEPS=test,build,tag,push,deploy,canary

dry_run=false
steps=$ALL_STEPS
canary_version=""
canary_percent=10
model_version=""
# The predictor's tag suffix: "" (the default variant) or "-sklearn".
predictor_suffix=""
usage() {
  echo "usage: $0 [--dry-run] [--only STEP,...] [--model_version N] [--canary MODEL_VERSION]" \
    "[--canary_percent N] [--predictor_variant sklearn]" >&2
  echo "steps: $ALL_STEPS" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) dry_run=true; shift ;;
    --only) [[ $# -ge 2 ]] || usage; steps=$2; shift 2 ;;
    --model_version) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; model_version=$2; shift 2 ;;
    --canary) [[ $# -ge 2 ]] || usage; canary_version=$2; shift 2 ;;
    --canary_percent) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; canary_percent=$2; shift 2 ;;
    --predictor_variant) [[ $# -ge 2 && $2 == sklearn ]] || usage; predictor_suffix="-$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
IFS=, read -ra wanted <<<"$steps"
for step in "${wanted[@]}"; do
  [[ ,$ALL_STEPS, == *",$step,"* ]] || { echo "unknown step: $step" >&2; usage; }
done
wants() { [[ ,$steps, == *",$1,"* ]]; }
# The canary's `rollout start` checks the version in the MLflow registry: know where it is
# before anything is built or pushed.
if wants canary && [[ -n $canary_version && -z ${MLFLOW_TRACKING_URI:-} ]] && ! $dry_run; then
  echo "MLFLOW_TRACKING_URI is not set: needed by the canary (rollout start asks MLflow)" >&2
  exit 2
fi

version=$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)
revision=$(git rev-parse HEAD)
# The tag scripts/images.sh gives by default.
build_tag="$version-${revision:0:7}"
# A part's tag suffix: the predictor's variant's, if one is released.
suffix() { [[ $1 != predictor ]] || echo "$predictor_suffix"; }

say() { echo "release: $*" >&2; }
# Print a command, then run it unless --dry-run.
run() {
  printf '+' >&2; printf ' %q' "$@" >&2; echo >&2
  $dry_run || "$@"
}
need_registry() {
  [[ -n $REGISTRY ]] || { echo "RELEASE_REGISTRY is not set (e.g. 127.0.0.1:5000)" >&2; exit 2; }
}

if wants test; then
  say "test: every tier (make test)"
  run make test
fi

if wants build; then
  say "build: the images, tagged $build_tag"
  built=()
  for part in "${PARTS[@]}"; do built+=("$part$(suffix "$part")"); done
  run scripts/images.sh --tag "$build_tag" "${built[@]}"
fi

if wants tag; then
  need_registry
  say "tag: $REGISTRY/sales-quantity-classifier-PART:{$version,$build_tag}"
  for part in "${PARTS[@]}"; do
    sfx=$(suffix "$part")
    run buildah tag "$LOCAL-$part:$build_tag$sfx" \
      "$REGISTRY/sales-quantity-classifier-$part:$version$sfx" \
      "$REGISTRY/sales-quantity-classifier-$part:$build_tag$sfx"
  done
fi

declare -A digests=()
if wants push; then
  need_registry
  say "push: to $REGISTRY (tls-verify=$TLS_VERIFY)"
  digest_dir=$(mktemp -d)
  trap 'rm -rf "$digest_dir"' EXIT
  for part in "${PARTS[@]}"; do
    for tag in "$build_tag" "$version"; do
      ref="$REGISTRY/sales-quantity-classifier-$part:$tag$(suffix "$part")"
      run buildah push --tls-verify="$TLS_VERIFY" --digestfile "$digest_dir/$part" \
        "$ref" "docker://$ref"
    done
    if ! $dry_run; then
      digests[$part]=$(cat "$digest_dir/$part")
      # The one line on stdout per image: what was released, by digest.
      echo "$REGISTRY/sales-quantity-classifier-$part@${digests[$part]}"
    fi
  done
fi

# The registry version the alias names now, asked of MLflow once: the deploy pins it, so that
# every pod serves it whenever it starts, whatever the alias does later.
resolve_alias() {
  "$PYTHON" - "$MODEL" "$MODEL_ALIAS" <<'PY'
import sys
from mlflow import MlflowClient
print(MlflowClient().get_model_version_by_alias(sys.argv[1], sys.argv[2]).version)
PY
}

if wants deploy; then
  need_registry
  if [[ -z $model_version ]]; then
    say "deploy: the registry version models:/$MODEL@$MODEL_ALIAS names now (MLflow at ${MLFLOW_TRACKING_URI:-?})"
    printf '+ resolve models:/%s@%s\n' "$MODEL" "$MODEL_ALIAS" >&2
    # A read-only question, asked in a dry run too when MLflow is named.
    if [[ -n ${MLFLOW_TRACKING_URI:-} ]]; then
      model_version=$(resolve_alias) || { echo "cannot resolve models:/$MODEL@$MODEL_ALIAS" >&2; exit 1; }
      say "deploy: @$MODEL_ALIAS is version $model_version"
    elif $dry_run; then
      model_version="VERSION-OF-$MODEL_ALIAS"
    else
      echo "MLFLOW_TRACKING_URI is not set: needed to resolve @$MODEL_ALIAS (or pass --model_version N)" >&2
      exit 2
    fi
  fi
  deploy=(helm upgrade --install sales-quantity-classifier helm/sales-quantity-classifier
    --namespace "$NAMESPACE" --create-namespace --wait
    --set "predictor.modelVersion=$model_version")
  # One registry and tag for the three images; each digest, once pushed, pins its image.
  deploy+=(--set-string "image.registry=$REGISTRY" --set-string "image.tag=$build_tag")
  if [[ -n $predictor_suffix ]]; then
    deploy+=(--set-string "predictor.image.tag=$build_tag$predictor_suffix")
  fi
  for part in "${PARTS[@]}"; do
    if [[ -n ${digests[$part]:-} ]]; then
      deploy+=(--set-string "$part.image.digest=${digests[$part]}")
    fi
  done
  if [[ -d helm/sales-quantity-classifier ]] && command -v helm >/dev/null; then
    say "deploy: helm upgrade --install into namespace $NAMESPACE"
    run "${deploy[@]}"
  else
    say "deploy: no helm command here (or no chart at helm/sales-quantity-classifier); would run:"
    printf '+' >&2; printf ' %q' "${deploy[@]}" >&2; echo >&2
  fi
fi

if wants canary && [[ -n $canary_version ]]; then
  canary=("$PYTHON" -m rollout start "$canary_version" --percent "$canary_percent"
    --namespace "$NAMESPACE" --tracking_uri "${MLFLOW_TRACKING_URI:-MLFLOW_TRACKING_URI}")
  if [[ -f rollout/__main__.py ]]; then
    say "canary: model version $canary_version at $canary_percent %"
    run "${canary[@]}"
  else
    say "canary: no rollout/ package yet; would run:"
    printf '+' >&2; printf ' %q' "${canary[@]}" >&2; echo >&2
  fi
fi
say "done"
