# Helpers of .github/workflows/e2e.yaml (sourced): reach the InferenceService from outside the
# cluster and ask it, printing the registry version that answered (x-model-version).
#   start_forward [PORT]   a port-forward from the runner: Standard mode to the transformer's
#                          Service, Knative mode to Istio's ingress gateway (Host: the
#                          InferenceService's URL), on PORT (default 8080)
#   ask_v1, ask_v2         one request each, V1 and V2; print the version
# Reads MODE, NS, RELEASE and MODEL from the job's environment.

PORT=${PORT:-8080}
RECORD='{"date": "2026-03-14", "store_id": "S012", "item_id": "I0457", "category": "dairy", "unit_price": 3.49, "discount_pct": 0.1, "on_promotion": true, "is_holiday": false}'

start_forward() {
  PORT=${1:-$PORT}
  local pidfile="$RUNNER_TEMP/forward-$PORT.pid"
  [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null
  if [[ $MODE == knative ]]; then
    HOST=$(kubectl -n "$NS" get inferenceservice "$RELEASE" -o jsonpath='{.status.url}')
    HOST=${HOST#*://}
    kubectl -n istio-system port-forward svc/istio-ingressgateway "$PORT:80" >/dev/null 2>&1 &
  else
    HOST=""
    kubectl -n "$NS" port-forward "svc/$RELEASE-transformer" "$PORT:80" >/dev/null 2>&1 &
  fi
  echo $! > "$pidfile"
  export HOST PORT
  for _ in $(seq 30); do
    curl -s -o /dev/null ${HOST:+-H "Host: $HOST"} "http://127.0.0.1:$PORT/" && return 0
    sleep 1
  done
  echo "port-forward on $PORT never answered" >&2
  return 1
}

_version_of() {  # curl arguments -> the x-model-version of a 200 answer
  local headers
  headers=$(curl -s -o /dev/null -D - --fail-with-body ${HOST:+-H "Host: $HOST"} \
    -H 'content-type: application/json' "$@") || return 1
  tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1) == "x-model-version" {print $2}'
}

ask_v1() {
  _version_of "http://127.0.0.1:$PORT/v1/models/$MODEL:predict" \
    -d "{\"instances\": [$RECORD]}"
}

ask_v2() {
  _version_of "http://127.0.0.1:$PORT/v2/models/$MODEL/infer" \
    -d "{\"inputs\": [{\"name\": \"records\", \"datatype\": \"BYTES\", \"shape\": [1], \"data\": [$(jq -Rn --arg r "$RECORD" '$r')]}]}"
}
