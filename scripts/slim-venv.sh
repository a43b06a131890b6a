#!/usr/bin/env bash
# Slims an image's virtualenv in its builder stage, after the locked install and before the
# final stage copies it: `scripts/slim-venv.sh /opt/venv`. Each step removes only what no
# server or job of this project reads at run time; what it saves was measured on this repo's
# images (docs/images.md, the table of steps), and the image tier runs every image after it
# (tests/images/: test_dependencies.py serves from each server image with every module it
# imports recorded, test_slim.py checks what is gone stays gone).
#
# Byte code is kept for every module a server imports, so starting stays as fast: it is
# dropped only for trees nothing imports (a module there, if ever imported, is compiled in
# memory, as the root filesystem is read-only), and the image tier checks that each module
# a serving process reached has its byte code.
set -euo pipefail

venv=${1:?usage: $0 VENV [LOCK]}
# The lock the virtualenv was installed from: setuptools and wheel stay if it names them.
lock=${2:-}
site=$(echo "$venv"/lib/python3*/site-packages)
[[ -d $site ]] || { echo "slim-venv: no site-packages under $venv" >&2; exit 1; }
before=$(du -sk "$venv" | cut -f1)
last=$before
# After each step: what it saved (MB), on stderr, for the build log.
saved() {
  local now
  now=$(du -sk "$venv" | cut -f1)
  printf 'slim-venv: %-44s %6.1f MB\n' "$1" "$(((last - now) * 1024))e-6" >&2
  last=$now
}

# 1. The installer, and what `python -m venv` adds beside it (setuptools, 7 MB, unless the
#    lock names it): nothing installs at run time, and the root filesystem is read-only.
for tool in setuptools wheel; do
  if [[ -z $lock ]] || ! grep -qi "^$tool==" "$lock"; then
    "$venv/bin/python" -m pip uninstall --yes --quiet "$tool" 2>/dev/null || true
  fi
done
"$venv/bin/python" -m pip uninstall --yes --quiet pip 2>/dev/null || true
rm -f "$venv"/bin/pip "$venv"/bin/pip3*
saved "1. pip, setuptools"

# 2. Packages' own test suites, C/C++ headers and sources (Cython's .pyx/.pxd/.pxi, .c, .h),
#    type stubs (.pyi, read by type checkers only), and pip's caches if any.
find "$site" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} +
find "$site" -depth -type d -name include -exec rm -rf {} +
find "$site" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cc' \
  -o -name '*.cpp' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete
rm -rf /root/.cache/pip
saved "2. tests, headers, sources, stubs"

# 3. Unused parts of packages, where a package's own import does not load them:
#    - kubernetes/aio: the Kubernetes client's asyncio copy (only the monitoring image has
#      the client, for the rollout CLI, which is synchronous).
#    - The synchronous client's generated API and model classes (kubernetes/client/api and
#      /models, 56 MB with their byte code): `import kserve` imports the client's package,
#      which loads these lazily, by name (their __init__ imports them for type checkers
#      only); KServe's KServeClient, which names them, manages InferenceServices from
#      outside a cluster and no server calls it. Their packages' __init__ stay, and
#      CustomObjectsApi, which the rollout CLI (monitoring image) calls.
#    - pyarrow's Flight RPC (libarrow_flight and its bindings): only pyarrow.flight loads
#      them; the capture store and the jobs read and write Parquet files.
#    - pyarrow's C++ test library, and the two extra copies of each libarrow_python* that
#      the wheel ships as files where the build made symbolic links (links again here).
rm -rf "$site/kubernetes/aio"
if [[ -d $site/kubernetes/client ]]; then
  # Kept: what CustomObjectsApi, the rollout CLI's one API (rollout/kube.py, in the monitoring
  # image), imports of them, as its import names it.
  keep=$("$venv/bin/python" -c 'import sys, kubernetes.client as c; c.CustomObjectsApi
print(" ".join(m.rpartition(".")[2] for m in sys.modules
               if m.startswith(("kubernetes.client.api.", "kubernetes.client.models."))))')
  for generated in api models; do
    dir=$site/kubernetes/client/$generated
    for file in "$dir"/*.py; do
      name=$(basename "$file" .py)
      [[ $name == __init__ || " $keep " == *" $name "* ]] && continue
      rm -f "$file" "$dir/__pycache__/$name".*
    done
  done
fi
if [[ -d $site/pyarrow ]]; then
  rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* \
    "$site"/pyarrow/_flight.cpython-*.so "$site"/pyarrow/flight.py \
    "$site"/pyarrow/_pyarrow_cpp_tests.cpython-*.so
  for lib in "$site"/pyarrow/libarrow_python*.so.*.*.*; do
    [[ -f $lib && ! -L $lib ]] || continue
    name=$(basename "$lib")  # libarrow_python.so.2500.1.0
    soname=${name%.*.*}      # libarrow_python.so.2500
    ln -sf "$name" "$site/pyarrow/$soname"
    ln -sf "$soname" "$site/pyarrow/${soname%.*}"
  done
fi
saved "3. unused parts (Kubernetes client, Flight)"

# 4. Byte code of trees nothing imports: the Databricks SDK (`import mlflow` looks for the
#    `databricks` namespace package, which must be there, and nothing in it), and MLflow's
#    flavours, server and CLI (the predictor and the jobs read the registry through
#    MlflowClient; the predictor loads the model's files itself).
drop_bytecode() { [[ -d $1 ]] && find "$1" -type d -name __pycache__ -exec rm -rf {} +; return 0; }
drop_bytecode "$site/databricks/sdk"
if [[ -d $site/mlflow ]]; then
  # The subpackages `import mlflow` and the registry client load (python -X importtime).
  keep=" agent artifacts azure client config data entities environment_variables \
    error_classification exceptions gateway genai legacy_databricks_cli mismatch \
    ml_package_versions models projects prompt protos pytest store system_metrics \
    telemetry tracing tracking types utils version "
  for tree in "$site"/mlflow/*/; do
    name=$(basename "$tree")
    [[ $name == __pycache__ || $keep == *" $name "* ]] || drop_bytecode "$tree"
  done
fi
saved "4. byte code of unused trees"

# 5. Symbol tables and debug sections of shared objects, where binutils is there (the
#    builder installs it; the final stage never has it): Python loads extension modules
#    through their dynamic symbols only. Libraries vendored by auditwheel (*.libs/) are
#    left as they are: patchelf rewrote them, and strip after patchelf is known to break
#    some.
if command -v strip >/dev/null; then
  find "$site" -type f -name '*.so*' -not -path '*.libs/*' -exec strip --strip-unneeded {} +
  saved "5. symbol tables (strip)"
else
  echo "slim-venv: no strip (binutils): shared objects left unstripped" >&2
fi

after=$(du -sk "$venv" | cut -f1)
echo "slim-venv: $venv $((before / 1024)) MB -> $((after / 1024)) MB" >&2
