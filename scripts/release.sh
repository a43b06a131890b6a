#!/usr/bin/env bash
# The release pipeline: `make release`, or
#   scripts/release.sh [--dry-run] [--only STEP,...] [--model_version N]
#                      [--canary MODEL_VERSION] [--canary_percent N | --canary_job]
#                      [--predictor_variant sklearn]
# Steps, in order: test (make test) -> build (scripts/images.sh) -> tag (VERSION and
# VERSION-REVISION, under $RELEASE_REGISTRY) -> push -> deploy (helm upgrade --install with the
# registry version to serve pinned: --model_version, or the version the alias
# $RELEASE_MODEL_ALIAS names in MLflow now, resolved here once; printed only where the helm
# command or the chart is missing) -> canary (with --canary only: python -m rollout start
# MODEL_VERSION at --canary_percent; or, with --canary_job, python -m rollout run MODEL_VERSION
# in the cluster: the chart's rollout Job, rendered with the deploy's values and applied
# beside the release (never part of it, so no later upgrade runs it again), waited for; its log
# holds the decisions and the report, and the release succeeds only if it promoted; printed
# only where helm or kubectl is missing). Each step says what it does and the first failure
# stops the release. --dry-run prints the commands and runs none.
# --predictor_variant sklearn releases the predictor image's -sklearn variant (scikit-learn,
# skops and SciPy, for a model logged without its NumPy scorer artifact) in place of the
# default: built, tagged and pushed as VERSION-sklearn and VERSION-REVISION-sklearn, deployed
# with predictor.image.tag set to the latter (docs/images.md).
#
# Environment: RELEASE_REGISTRY (required for tag/push/deploy, e.g. registry.example:5000/team),
# RELEASE_TLS_VERIFY (true; false for a plain-HTTP registry such as a local test one),
# RELEASE_NAMESPACE (helm's namespace, default sales-quantity-classifier), RELEASE_MODEL_ALIAS
# (default production) and MLFLOW_TRACKING_URI (for deploy without --model_version, and the canary),
# RELEASE_VALUES (a values file for the chart, e.g. one with deploymentMode: Knative, which a
# canary needs: the deploy and the rollout Job's rendering both read it), RELEASE_PROMETHEUS_URL
# (the Prometheus the rollout Job queries, with --canary_job),
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
PROMETHEUS_URL=${RELEASE_PROMETHEUS_URL:-}
VALUES_FILE=${RELEASE_VALUES:-}
ALL_STEPS=test,build,tag,push,deploy,canary
CHART=helm/sales-quantity-classifier
# The chart's rollout Job and what it needs (templates/rollout-job.yaml, templates/rollout.yaml).
ROLLOUT_JOB=sales-quantity-classifier-rollout

dry_run=false
steps=$ALL_STEPS
canary_version=""
canary_percent=10
canary_job=false
percent_given=false
model_version=""
# The predictor's tag suffix: "" (the default variant) or "-sklearn".
predictor_suffix=""
usage() {
  echo "usage: $0 [--dry-run] [--only STEP,...] [--model_version N] [--canary MODEL_VERSION]" \
    "[--canary_percent N | --canary_job] [--predictor_variant sklearn]" >&2
  echo "steps: $ALL_STEPS" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) dry_run=true; shift ;;
    --only) [[ $# -ge 2 ]] || usage; steps=$2; shift 2 ;;
    --model_version) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; model_version=$2; shift 2 ;;
    --canary) [[ $# -ge 2 ]] || usage; canary_version=$2; shift 2 ;;
    --canary_percent) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; canary_percent=$2
      percent_given=true; shift 2 ;;
    --canary_job) canary_job=true; shift ;;
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
if [[ -n $VALUES_FILE && ! -f $VALUES_FILE ]]; then
  echo "RELEASE_VALUES=$VALUES_FILE: no such file" >&2
  exit 2
fi
if $canary_job && [[ -z $canary_version ]]; then
  echo "--canary_job needs --canary MODEL_VERSION: the version the Job rolls out" >&2
  usage
fi
if $canary_job && $percent_given; then
  echo "--canary_percent is for rollout start; the rollout Job steps by rollout.job.steps" >&2
  usage
fi
# The canary's `rollout start` checks the version in the MLflow registry: know where it is
# before anything is built or pushed. The rollout Job asks the chart's MLflow itself; here,
# MLflow only resolves the alias for its rendering, unless --model_version names the version.
if wants canary && [[ -n $canary_version && -z ${MLFLOW_TRACKING_URI:-} ]] && ! $dry_run; then
  if ! $canary_job; then
    echo "MLFLOW_TRACKING_URI is not set: needed by the canary (rollout start asks MLflow)" >&2
    exit 2
  elif [[ -z $model_version ]]; then
    echo "MLFLOW_TRACKING_URI is not set: needed to resolve @$MODEL_ALIAS for the rollout Job's" \
      "rendering (or pass --model_version N)" >&2
    exit 2
  fi
fi
# The rollout Job judges each step on Prometheus' per-version metrics: know where before
# anything is built or pushed.
if wants canary && $canary_job && [[ -z $PROMETHEUS_URL ]] && ! $dry_run; then
  echo "RELEASE_PROMETHEUS_URL is not set: needed by the rollout Job (--canary_job)" >&2
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
# Temporary files and directories, removed on exit.
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT
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
  cleanup+=("$digest_dir")
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

# The registry version to serve, pinned: --model_version, or what the alias names now.
pin_model_version() {
  [[ -z $model_version ]] || return 0
  say "$1: the registry version models:/$MODEL@$MODEL_ALIAS names now (MLflow at ${MLFLOW_TRACKING_URI:-?})"
  printf '+ resolve models:/%s@%s\n' "$MODEL" "$MODEL_ALIAS" >&2
  # A read-only question, asked in a dry run too when MLflow is named.
  if [[ -n ${MLFLOW_TRACKING_URI:-} ]]; then
    model_version=$(resolve_alias) || { echo "cannot resolve models:/$MODEL@$MODEL_ALIAS" >&2; exit 1; }
    say "$1: @$MODEL_ALIAS is version $model_version"
  elif $dry_run; then
    model_version="VERSION-OF-$MODEL_ALIAS"
  else
    echo "MLFLOW_TRACKING_URI is not set: needed to resolve @$MODEL_ALIAS (or pass --model_version N)" >&2
    exit 2
  fi
}

# The chart's values of this release: RELEASE_VALUES' file, the version pinned, one registry
# and tag for the three images (the predictor's with its variant's suffix), and each digest,
# once pushed, pinning its image.
chart_values() {
  values=()
  if [[ -n $VALUES_FILE ]]; then values=(--values "$VALUES_FILE"); fi
  values+=(--set "predictor.modelVersion=$model_version"
    --set-string "image.registry=$REGISTRY" --set-string "image.tag=$build_tag")
  if [[ -n $predictor_suffix ]]; then
    values+=(--set-string "predictor.image.tag=$build_tag$predictor_suffix")
  fi
  for part in "${PARTS[@]}"; do
    if [[ -n ${digests[$part]:-} ]]; then
      values+=(--set-string "$part.image.digest=${digests[$part]}")
    fi
  done
}

# Print a command as run() does, without running it.
show() { printf '+' >&2; printf ' %q' "$@" >&2; echo >&2; }
# Print a command with its output's file, then run it unless --dry-run.
run_into() {
  local file=$1
  shift
  printf '+' >&2; printf ' %q' "$@" >&2; printf ' > %q\n' "$file" >&2
  $dry_run || "$@" >"$file"
}

if wants deploy; then
  need_registry
  pin_model_version deploy
  chart_values
  deploy=(helm upgrade --install sales-quantity-classifier "$CHART"
    --namespace "$NAMESPACE" --create-namespace --wait "${values[@]}")
  if [[ -d $CHART ]] && command -v helm >/dev/null; then
    say "deploy: helm upgrade --install into namespace $NAMESPACE"
    run "${deploy[@]}"
  else
    say "deploy: no helm command here (or no chart at $CHART); would run:"
    show "${deploy[@]}"
  fi
fi

# Until the rollout Job is Complete or Failed (polled every 10 s), at most $2 seconds.
wait_for_job() {
  local deadline=$((SECONDS + $2)) state
  while :; do
    # A failed read (the API server briefly unreachable) is asked again at the next poll.
    state=$(kubectl get job "$1" --namespace "$NAMESPACE" \
      -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}') || state=""
    case " $state" in *" Complete "* | *" Failed "*) return 0 ;; esac
    ((SECONDS < deadline)) || return 1
    sleep 10
  done
}

# python -m rollout run in the cluster: the chart's rollout objects, rendered with this
# release's values and applied beside the release; the Job created (refused while the last
# one is still there: one rollout at a time), waited for, its log printed. The release
# succeeds only when the Job promoted the version.
canary_job() {
  need_registry
  pin_model_version canary
  chart_values
  local render=(helm template sales-quantity-classifier "$CHART" --namespace "$NAMESPACE"
    "${values[@]}" --set rollout.job.enabled=true --set "rollout.job.version=$canary_version"
    --set-string "rollout.job.prometheusUrl=${PROMETHEUS_URL:-RELEASE_PROMETHEUS_URL}")
  local dir
  dir=$(mktemp -d)
  cleanup+=("$dir")
  local access=$dir/rollout.yaml job=$dir/rollout-job.yaml
  # run and run_into read this: without the commands here, they print and run nothing.
  local dry_run=$dry_run
  if ! $dry_run && ! { [[ -d $CHART ]] && command -v helm >/dev/null && command -v kubectl >/dev/null; }; then
    say "canary: no helm or kubectl command here (or no chart at $CHART); would run:"
    dry_run=true
  else
    say "canary: python -m rollout run $canary_version in the cluster, as Job $ROLLOUT_JOB in $NAMESPACE"
  fi
  run_into "$access" "${render[@]}" --show-only templates/rollout.yaml
  run_into "$job" "${render[@]}" --show-only templates/rollout-job.yaml
  run kubectl apply --namespace "$NAMESPACE" -f "$access"
  run kubectl create --namespace "$NAMESPACE" -f "$job" || {
    echo "Job $ROLLOUT_JOB is still there (one rollout at a time): read its log," \
      "kubectl --namespace $NAMESPACE logs job/$ROLLOUT_JOB, then delete it" >&2
    exit 1
  }
  local seconds="ACTIVE_DEADLINE_SECONDS+300"
  if [[ -s $job ]]; then
    seconds=$(($(awk '/activeDeadlineSeconds:/ {print $2; exit}' "$job") + 300))
  fi
  printf '+ kubectl get job %s --namespace %s (every 10 s until Complete or Failed, up to %s s)\n' \
    "$ROLLOUT_JOB" "$NAMESPACE" "$seconds" >&2
  if ! $dry_run; then
    wait_for_job "$ROLLOUT_JOB" "$seconds" || {
      echo "Job $ROLLOUT_JOB did not finish in $seconds s" >&2
      exit 1
    }
  fi
  run kubectl logs --namespace "$NAMESPACE" "job/$ROLLOUT_JOB"
  local exit_code=(kubectl get pods --namespace "$NAMESPACE"
    -l "batch.kubernetes.io/job-name=$ROLLOUT_JOB"
    -o 'jsonpath={.items[0].status.containerStatuses[0].state.terminated.exitCode}')
  show "${exit_code[@]}"
  $dry_run && return 0
  local code
  code=$("${exit_code[@]}")
  # python -m rollout run's exit status (rollout/__main__.py).
  case $code in
    0) say "canary: version $canary_version promoted" ;;
    1) say "canary: version $canary_version rolled back (its log above says why)"; exit 1 ;;
    2) say "canary: no verdict; version $canary_version keeps its share (its log above)"; exit 1 ;;
    3) say "canary: KServe did not report the split in time (its log above)"; exit 1 ;;
    *) say "canary: the rollout Job stopped (exit ${code:-unknown}; its deadline?)"; exit 1 ;;
  esac
}

if wants canary && [[ -n $canary_version ]] && $canary_job; then
  canary_job
elif wants canary && [[ -n $canary_version ]]; then
  canary=("$PYTHON" -m rollout start "$canary_version" --percent "$canary_percent"
    --namespace "$NAMESPACE" --tracking_uri "${MLFLOW_TRACKING_URI:-MLFLOW_TRACKING_URI}")
  if [[ -f rollout/__main__.py ]]; then
    say "canary: model version $canary_version at $canary_percent %"
    run "${canary[@]}"
  else
    say "canary: no rollout/ package yet; would run:"
    show "${canary[@]}"
  fi
fi
say "done"
