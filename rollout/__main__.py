"""``python -m rollout``: canary rollouts of a registry version on an InferenceService.

    python -m rollout start VERSION --percent N   # canary pinned to models:/NAME/VERSION
    python -m rollout shift N                     # the canary's share
    python -m rollout promote                     # the canary becomes stable, 100 %
    python -m rollout rollback                    # all back to stable, canary dropped
    python -m rollout status [--metrics URL ...]  # who serves what share (and counts)

``--dry-run`` prints the exact JSON Patch, has the API server check it (a server-side dry
run) and changes nothing. Exit 0 done, 2 bad usage or an action that does not fit the
object's state (with a message), 1 the API server refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from rollout import plan
from rollout.errors import RolloutError

__all__ = ["main"]

STANDARD_CANARY_LIMITS = (
    "in Standard mode KServe 0.21 routes spec.canary[]'s share from the gateway straight to "
    "the canary predictor, around the transformer, and its webhook refuses a canary for a "
    "predictor without a storage URI; use Knative mode for canaries (docs/canary.md)"
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--name",
        default=os.environ.get("ROLLOUT_NAME", "sales-quantity-classifier"),
        help="the InferenceService (env ROLLOUT_NAME; default sales-quantity-classifier)",
    )
    common.add_argument(
        "--namespace",
        "-n",
        default=os.environ.get("ROLLOUT_NAMESPACE"),
        help="its namespace (env ROLLOUT_NAMESPACE; default: the context's)",
    )
    common.add_argument(
        "--kubeconfig",
        default=os.environ.get("ROLLOUT_KUBECONFIG"),
        help="kubeconfig file (env ROLLOUT_KUBECONFIG; default $KUBECONFIG, ~/.kube/config)",
    )
    common.add_argument("--context", default=None, help="kubeconfig context")
    common.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print the patch, have the server check it, change nothing",
    )
    parser = argparse.ArgumentParser(
        prog="python -m rollout", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", parents=[common], help="start a canary")
    start.add_argument("version", type=int, help="registry version of the canary")
    start.add_argument("--percent", type=int, required=True, help="its share, 0-100")
    shift = sub.add_parser("shift", parents=[common], help="change the canary's share")
    shift.add_argument("percent", type=int, help="its share, 0-100")
    sub.add_parser("promote", parents=[common], help="make the canary stable")
    sub.add_parser("rollback", parents=[common], help="drop the canary")
    status = sub.add_parser("status", parents=[common], help="show the split")
    status.add_argument(
        "--metrics",
        nargs="+",
        metavar="URL",
        default=None,
        help="predictors' /metrics URLs: add per-version counts",
    )
    return parser


def _patch_for(args: argparse.Namespace, isvc: plan.Obj) -> plan.Patch:
    if args.action == "start":
        return plan.start(isvc, args.version, args.percent)
    if args.action == "shift":
        return plan.shift(isvc, args.percent)
    if args.action == "promote":
        return plan.promote(isvc)
    return plan.rollback(isvc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one action; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        from rollout.kube import InferenceServices

        services = InferenceServices(
            kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace
        )
        isvc = services.get(args.name)
        if args.action == "status":
            report: dict[str, object] = plan.split_of(isvc).as_dict()
            report["name"], report["namespace"] = args.name, services.namespace
            if args.metrics:
                from rollout.metrics import per_version

                report["metrics"] = per_version(args.metrics)
            print(json.dumps(report, indent=2))
            return 0
        patch = _patch_for(args, isvc)
    except RolloutError as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(patch, indent=2))
    if args.action == "start" and plan.mode_of(isvc) == "Standard":
        print(f"rollout: warning: {STANDARD_CANARY_LIMITS}", file=sys.stderr)
    try:
        patched = services.patch(args.name, patch, dry_run=args.dry_run)
    except RolloutError as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return 1
    verb = "would serve" if args.dry_run else "serves"
    print(f"{args.name} {verb}: {json.dumps(plan.split_of(patched).as_dict())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
