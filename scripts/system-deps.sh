#!/usr/bin/env bash
# Installs the Debian packages the tests and tools need, only those missing.
# One list for the whole project: `make test` and `.ci/run` call this script, so a fresh
# machine needs nothing installed by hand. Each entry is "command:package".
set -euo pipefail

NEEDED=(
  make:make
  curl:curl
  # The real API server of the deploy tests (../shared/tools/kube-apiserver/start.sh).
  etcd:etcd-server
  openssl:openssl
  xz:xz-utils
  # images (issue 12): build and run container images without a Docker engine, make the
  # Debian base, push to and inspect a local OCI registry
  buildah:buildah
  debootstrap:debootstrap
  skopeo:skopeo
  docker-registry:docker-registry
  # Prometheus and promtool: the rule tests (promtool check/test rules) and the live
  # Prometheus of tests/integration/test_prometheus.py.
  prometheus:prometheus
  promtool:prometheus
  # The Pushgateway the monitoring tests push to.
  prometheus-pushgateway:prometheus-pushgateway
)

missing=()
for entry in "${NEEDED[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing system packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
