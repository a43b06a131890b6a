"""``python -m rollout``: canary rollouts of a registry version on an InferenceService.

    python -m rollout start VERSION --percent N   # canary pinned to models:/NAME/VERSION
    python -m rollout shift N                     # the canary's share
    python -m rollout promote                     # the canary's version becomes stable
    python -m rollout rollback                    # all back to stable, a clean spec
    python -m rollout status [--metrics URL ...]  # who serves what share, as KServe reports
    python -m rollout run VERSION --prometheus URL # step up, judge each step, promote or roll back

Each move prints the JSON Patch it sends (one line each) and waits, up to --timeout
seconds, for the revision it relies on to be ready. ``--dry-run`` has the API server check
the patch (a server-side dry run), changes nothing and waits for nothing. Exit 0 done, 2 bad
usage or a move that does not fit the object's state, 1 the API server or registry
unreachable or refusing, 3 not ready in time (nothing more sent).

``run`` (docs/progressive-delivery.md) exits 0 promoted, 1 rolled back, 2 no verdict
(too little traffic) or bad usage, 3 not ready in time; it prints one line per decision
and writes its JSON report to ``--report``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from common.core.redact import redact_text
from rollout import plan
from rollout.errors import RolloutError
from rollout.state import CanaryState

__all__ = ["main"]


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
        "--timeout",
        type=float,
        default=float(os.environ.get("ROLLOUT_TIMEOUT", "600")),
        help="seconds a move waits for a revision to be ready (env ROLLOUT_TIMEOUT; 600)",
    )
    common.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print the patch, have the server check it, change nothing, wait for nothing",
    )
    parser = argparse.ArgumentParser(
        prog="python -m rollout", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", parents=[common], help="start a canary")
    start.add_argument("version", type=int, help="registry version of the canary")
    start.add_argument("--percent", type=int, required=True, help="its share, 0-99")
    start.add_argument(
        "--tracking_uri",
        "--tracking-uri",
        dest="tracking_uri",
        default=os.environ.get("ROLLOUT_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI"),
        help="the MLflow server holding the version (env ROLLOUT_TRACKING_URI, "
        "MLFLOW_TRACKING_URI)",
    )
    shift = sub.add_parser("shift", parents=[common], help="change the canary's share")
    shift.add_argument("percent", type=int, help="its share, 0-99")
    sub.add_parser("promote", parents=[common], help="make the canary's version stable")
    sub.add_parser("rollback", parents=[common], help="drop the canary")
    status = sub.add_parser("status", parents=[common], help="show the split")
    status.add_argument(
        "--metrics",
        nargs="+",
        metavar="URL",
        default=None,
        help="predictors' /metrics URLs: add per-version counts",
    )
    _run_parser(sub, common)
    return parser


def _steps(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid: expected percentages separated by commas, e.g. 10,25,50,100"
        ) from None


def _run_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from rollout.analysis import Thresholds

    run = sub.add_parser(
        "run", parents=[common], help="step the canary up, judge each step, promote or roll back"
    )
    run.add_argument("version", type=int, help="registry version of the canary")
    run.add_argument("--steps", type=_steps, default=[10, 25, 50, 100], help="10,25,50,100")
    run.add_argument("--interval", type=float, default=60.0, help="seconds analysed per step (60)")
    run.add_argument(
        "--max_wait",
        "--max-wait",
        dest="max_wait",
        type=float,
        default=600.0,
        help="seconds a step may wait for enough traffic before the run stops (600)",
    )
    run.add_argument(
        "--failure_limit",
        "--failure-limit",
        dest="failure_limit",
        type=int,
        default=1,
        help="failed checks that roll back (1)",
    )
    run.add_argument(
        "--prometheus",
        default=os.environ.get("ROLLOUT_PROMETHEUS_URL"),
        help="Prometheus' URL (env ROLLOUT_PROMETHEUS_URL)",
    )
    run.add_argument(
        "--selector",
        default=os.environ.get("ROLLOUT_SELECTOR", ""),
        help='extra label matchers of the queries, e.g. namespace="ml" (env ROLLOUT_SELECTOR)',
    )
    run.add_argument("--analysis", default=None, help="YAML analysis file: thresholds")
    run.add_argument(
        "--labels",
        default=os.environ.get("ROLLOUT_LABELS", ""),
        help="ground truth: CSV/Parquet files of request_id,row,label, as `python -m monitoring "
        "performance --labels` reads them; adds the accuracy check (env ROLLOUT_LABELS)",
    )
    run.add_argument(
        "--current",
        default=os.environ.get("ROLLOUT_CURRENT", ""),
        help="the capture store the labels join, as `python -m monitoring performance "
        "--current` reads it (env ROLLOUT_CURRENT)",
    )
    run.add_argument("--report", default="rollout-report.json", help="the JSON report's path")
    run.add_argument(
        "--tracking_uri",
        "--tracking-uri",
        dest="tracking_uri",
        default=os.environ.get("ROLLOUT_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI"),
        help="the MLflow server (env ROLLOUT_TRACKING_URI, MLFLOW_TRACKING_URI)",
    )
    run.add_argument(
        "--log_to_mlflow",
        "--log-to-mlflow",
        dest="log_to_mlflow",
        action="store_true",
        help="tag the model version rollout=promoted|rolled_back",
    )
    for f in fields(Thresholds):
        run.add_argument(
            f"--{f.name}",
            type=int if f.type in {"int", int} else float,
            default=None,
            help=f"threshold (default {getattr(Thresholds(), f.name)})",
        )


def _check_arguments(args: argparse.Namespace) -> None:
    """What can be checked without the cluster: before anything is contacted."""
    if args.timeout < 0:
        raise RolloutError(f"timeout={args.timeout:g} is invalid: expected seconds, 0 or more")
    if args.action == "start":
        plan.check_version(args.version)
        plan.check_percent(args.percent)
        if not args.tracking_uri:
            raise RolloutError(
                "start checks the version in the MLflow registry: give --tracking_uri "
                "(or ROLLOUT_TRACKING_URI / MLFLOW_TRACKING_URI)"
            )
    if args.action == "shift":
        plan.check_percent(args.percent)
    if args.action == "run":
        _check_run(args)


def _check_run(args: argparse.Namespace) -> None:
    from rollout.progressive import check_steps

    plan.check_version(args.version)
    check_steps(args.steps)
    for name in ("interval", "max_wait"):
        if getattr(args, name) <= 0:
            raise RolloutError(f"{name}={getattr(args, name):g} is invalid: expected seconds > 0")
    if args.failure_limit < 1:
        raise RolloutError(f"failure_limit={args.failure_limit} is invalid: expected 1 or more")
    if not args.prometheus and not args.dry_run:
        raise RolloutError("run queries Prometheus: give --prometheus (or ROLLOUT_PROMETHEUS_URL)")
    if not args.tracking_uri and not args.dry_run:
        raise RolloutError(
            "run checks the version in the MLflow registry: give --tracking_uri "
            "(or ROLLOUT_TRACKING_URI / MLFLOW_TRACKING_URI)"
        )
    if bool(args.labels) != bool(args.current):
        raise RolloutError(
            "the accuracy check joins --labels to the predictions captured in --current: "
            "give both, or neither"
        )
    if args.labels:
        from rollout.labels import check_location

        check_location(args.labels, "labels")
        check_location(args.current, "current")


def _thresholds(args: argparse.Namespace) -> Any:
    from rollout.analysis import Thresholds

    thresholds = Thresholds()
    if args.analysis:
        import yaml

        try:
            loaded = yaml.safe_load(Path(args.analysis).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RolloutError(f"analysis file {args.analysis}: {exc}") from exc
        if not isinstance(loaded, dict) or not isinstance(loaded.get("thresholds"), dict):
            raise RolloutError(
                f"analysis file {args.analysis}: expected a mapping with `thresholds:`"
            )
        thresholds = Thresholds.from_mapping(loaded["thresholds"], source=args.analysis)
    given = {f.name: getattr(args, f.name) for f in fields(Thresholds)}
    given = {k: v for k, v in given.items() if v is not None}
    return Thresholds.from_mapping({**asdict(thresholds), **given}, source="flags")


def _run_delivery(args: argparse.Namespace, rollout: Any, cluster_namespace: str) -> int:
    from rollout.progressive import Delivery, Options
    from rollout.queries import Prometheus
    from rollout.state import registered_model
    from rollout.versions import check_version, tag_version

    options = Options(
        version=args.version,
        steps=tuple(args.steps),
        interval=args.interval,
        max_wait=args.max_wait,
        failure_limit=args.failure_limit,
        thresholds=_thresholds(args),
        selector=args.selector,
        labels=args.labels,
        current=args.current,
    )
    ground_truth = None
    if args.labels:
        from rollout.labels import labelled_by_version

        ground_truth = functools.partial(labelled_by_version, args.current, args.labels)
    delivery = Delivery(
        rollout,
        Prometheus(args.prometheus or ""),
        options,
        check_version=lambda name, version: check_version(args.tracking_uri, name, version),
        say=lambda line: print(f"rollout run: {line}", flush=True),
        ground_truth=ground_truth,
    )
    if args.dry_run:
        print(json.dumps(delivery.plan(), indent=2))
        return 0
    report = {"name": args.name, "namespace": cluster_namespace, **delivery.run()}
    if args.log_to_mlflow and report["outcome"] != "no_verdict":
        _, state = rollout.read()
        name = registered_model(state.spec_uri)
        tag_version(args.tracking_uri, name, args.version, "rollout", report["outcome"])
        report["mlflow_tag"] = {"rollout": report["outcome"]}
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    print(f"rollout run: {report['outcome']}; report in {args.report}", flush=True)
    return int(report["exit_status"])


def _summary(name: str, state: CanaryState, dry_run: bool) -> str:
    verb = "would ask for" if dry_run else "asks for"
    if state.phase == "canary":
        split = (
            f"{state.canary_uri} at {state.canary_percent} %, "
            f"stable {state.stable_uri} at {100 - (state.canary_percent or 0)} %"
        )
    elif state.phase == "cleanup":
        split = f"{state.spec_uri}, canaryTrafficPercent={state.traffic_field} until it is ready"
    else:
        split = f"{state.spec_uri} at 100 %"
    return f"{name} {verb}: {split}"


def _run(args: argparse.Namespace) -> int:
    from rollout.actions import Rollout
    from rollout.kube import InferenceServices

    cluster = InferenceServices(
        kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace
    )
    rollout = Rollout(
        cluster,
        args.name,
        timeout=args.timeout,
        dry_run=args.dry_run,
        report=lambda line: print(f"rollout: {line}", file=sys.stderr),
        sent=lambda patch: print(
            json.dumps(patch), file=sys.stderr if args.action == "run" else sys.stdout, flush=True
        ),
    )
    if args.action == "run":
        return _run_delivery(args, rollout, cluster.namespace)
    if args.action == "status":
        _, state = rollout.read()
        report: dict[str, object] = {"name": args.name, "namespace": cluster.namespace}
        report.update(state.as_dict())
        if args.metrics:
            from rollout.metrics import per_version

            report["metrics"] = per_version(args.metrics)
        print(json.dumps(report, indent=2))
        return 0
    if args.action == "start":
        from rollout.versions import check_version

        state = rollout.start(
            args.version,
            args.percent,
            lambda name, version: check_version(args.tracking_uri, name, version),
        )
    elif args.action == "shift":
        state = rollout.shift(args.percent)
    elif args.action == "promote":
        state = rollout.promote()
    else:
        state = rollout.rollback()
    print(_summary(args.name, state, args.dry_run), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one action; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        _check_arguments(args)
        return _run(args)
    except RolloutError as exc:
        print(f"rollout: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
