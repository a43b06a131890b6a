"""helm test: send one V2 request to the transformer and check the answer.

Standard library only (it runs in the transformer's image). INFER_URL is the V2 infer URL,
MODEL_NAME the model that must answer. Exits 0 when the answer names the model and a version
and gives a known class with probabilities; otherwise prints why and exits 1.
"""

import json
import os
import sys
import urllib.request

RECORD = {
    "date": "2026-03-14",
    "store_id": "S012",
    "item_id": "I0457",
    "category": "dairy",
    "unit_price": 3.49,
    "discount_pct": 0.1,
    "on_promotion": True,
    "is_holiday": False,
}
TYPES = {float: "FP64", bool: "BOOL", str: "BYTES"}


def main() -> int:
    url, model = os.environ["INFER_URL"], os.environ["MODEL_NAME"]
    body = {
        "inputs": [
            {"name": k, "datatype": TYPES[type(v)], "shape": [1], "data": [v]}
            for k, v in RECORD.items()
        ]
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        # x-sqc-synthetic: served as any request, but not captured for drift and performance.
        headers={
            "content-type": "application/json",
            "x-request-id": "helm-test",
            "x-sqc-synthetic": "true",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
            version = response.headers.get("x-model-version")
    except Exception as exc:  # any failure to get an answer is the test's failure
        print(f"FAIL: POST {url}: {exc}")
        return 1
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    problems = []
    if answer.get("model_name") != model:
        problems.append(f"model_name={answer.get('model_name')!r}, expected {model!r}")
    if not answer.get("model_version") or not version:
        problems.append("no model version in the body or the x-model-version header")
    classes = outputs.get("predicted_class", {}).get("data", [])
    if len(classes) != 1 or classes[0] not in {"low", "medium", "high"}:
        problems.append(f"predicted_class={classes!r}, expected one of low/medium/high")
    if "probabilities" not in outputs:
        problems.append("no probabilities output")
    if problems:
        print("FAIL: " + "; ".join(problems))
        return 1
    print(f"OK: {model} version {version} answered {classes[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
