#!/usr/bin/env bash
# The local stack on 127.0.0.1: MLflow (SQLite, proxied artifacts), a trained and
# promoted model, the predictor and the transformer, left serving in the background.
#
#   scripts/stack.sh up | down | status | train
#
# State, logs and pids live in .stack/. Ports come from the environment:
# STACK_MLFLOW_PORT (5000), STACK_PREDICTOR_PORT (8085), STACK_TRANSFORMER_PORT (8080).
set -euo pipefail

cd "$(dirname "$0")/.."
STATE=.stack
BIN=.venv/bin
MODEL=sales-quantity-classifier
MLFLOW_PORT=${STACK_MLFLOW_PORT:-5000}
PREDICTOR_PORT=${STACK_PREDICTOR_PORT:-8085}
TRANSFORMER_PORT=${STACK_TRANSFORMER_PORT:-8080}
export MLFLOW_TRACKING_URI="http://127.0.0.1:${MLFLOW_PORT}"

running() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start() {  # start NAME COMMAND...: in the background, logging to .stack/NAME.log
  local name=$1; shift
  if running "$name"; then echo "$name already running (pid $(cat "$STATE/$name.pid"))"; return; fi
  setsid "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

wait_ready() {  # wait_ready NAME URL
  local name=$1 url=$2
  for _ in $(seq 1 240); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && { echo "$name ready: $url"; return; }
    running "$name" || { echo "$name exited; its log, $STATE/$name.log, ends with:"; tail -20 "$STATE/$name.log"; exit 1; }
    sleep 0.5
  done
  echo "$name not ready after 120s; see $STATE/$name.log"; exit 1
}

has_production_model() {
  "$BIN/python" - <<PY 2>/dev/null
from mlflow import MlflowClient
MlflowClient().get_model_version_by_alias("$MODEL", "production")
PY
}

train() {
  "$BIN/python" -m training --data_dir "$STATE/data" | tee "$STATE/training.json"
}

up() {
  mkdir -p "$STATE"
  # MLflow's job runner starts eight worker processes the stack does not use.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false start mlflow "$BIN/mlflow" server \
    --backend-store-uri "sqlite:///$PWD/$STATE/mlflow.db" \
    --artifacts-destination "$PWD/$STATE/artifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
  wait_ready mlflow "$MLFLOW_TRACKING_URI/health"
  has_production_model && echo "a production model is registered" || train
  start predictor "$BIN/python" -m predictor --bind_host 127.0.0.1 --http_port "$PREDICTOR_PORT"
  wait_ready predictor "http://127.0.0.1:$PREDICTOR_PORT/v2/models/$MODEL/ready"
  start transformer "$BIN/python" -m transformer --bind_host 127.0.0.1 \
    --http_port "$TRANSFORMER_PORT" --predictor_host "127.0.0.1:$PREDICTOR_PORT" \
    --capture_uri "$PWD/$STATE/capture"
  wait_ready transformer "http://127.0.0.1:$TRANSFORMER_PORT/v2/models/$MODEL/ready"
  cat <<EOF

The stack is serving. MLflow UI: $MLFLOW_TRACKING_URI   Stop it: make down

V1:
curl -s http://127.0.0.1:$TRANSFORMER_PORT/v1/models/$MODEL:predict -H 'content-type: application/json' \\
  -d '{"instances": [{"date": "2026-03-14", "store_id": "S012", "item_id": "I0457", "category": "dairy", "unit_price": 3.49, "discount_pct": 0.1, "on_promotion": true, "is_holiday": false}]}'

V2:
curl -s http://127.0.0.1:$TRANSFORMER_PORT/v2/models/$MODEL/infer -H 'content-type: application/json' \\
  -d '{"inputs": [{"name": "date", "datatype": "BYTES", "shape": [1], "data": ["2026-03-14"]}, {"name": "store_id", "datatype": "BYTES", "shape": [1], "data": ["S012"]}, {"name": "item_id", "datatype": "BYTES", "shape": [1], "data": ["I0457"]}, {"name": "category", "datatype": "BYTES", "shape": [1], "data": ["dairy"]}, {"name": "unit_price", "datatype": "FP64", "shape": [1], "data": [3.49]}, {"name": "discount_pct", "datatype": "FP64", "shape": [1], "data": [0.1]}, {"name": "on_promotion", "datatype": "BOOL", "shape": [1], "data": [true]}, {"name": "is_holiday", "datatype": "BOOL", "shape": [1], "data": [false]}]}'
EOF
}

down() {
  for name in transformer predictor mlflow; do
    if running "$name"; then
      kill -- "-$(cat "$STATE/$name.pid")" 2>/dev/null || kill "$(cat "$STATE/$name.pid")"
      echo "stopped $name"
    fi
    rm -f "$STATE/$name.pid"
  done
}

status() {
  for name in mlflow predictor transformer; do
    if running "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  train) mkdir -p "$STATE"; train ;;
  *) echo "usage: $0 up | down | status | train" >&2; exit 2 ;;
esac
