"""``python -m monitoring drift | performance | simulate``: the jobs the CronJobs run.

Exit status: 0 the job ran (drift or not), 1 drift or a data-quality failure with
--fail_on_drift (or retraining recommended with --fail_on_degradation), 2 bad input or
usage (a message says which flag or file), 3 a service it needs (MLflow, an object
store) failed, 4 an internal error (a defect: one line at ERROR, the traceback at DEBUG),
so that a crash never reads as drift or as a job that ran.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic_settings import BaseSettings

from common.core.cli import parse_settings
from common.core.logs import configure_logging
from monitoring.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_VERDICT, MonitoringError
from monitoring.settings import DriftSettings, PerformanceSettings, SimulateSettings
from monitoring.tracking import target

if TYPE_CHECKING:
    from monitoring.publish import Delivery

__all__ = ["main"]

log = logging.getLogger("monitoring")

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_USAGE = "usage: python -m monitoring {drift,performance,simulate} [--help] [flags]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one job; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    jobs: dict[str, tuple[type[BaseSettings], Callable[[BaseSettings], int]]] = {
        "drift": (DriftSettings, _drift),
        "performance": (PerformanceSettings, _performance),
        "simulate": (SimulateSettings, _simulate),
    }
    if args[:1] in (["-h"], ["--help"]):
        print(_USAGE)  # asked for: the answer, on stdout
        return 0
    if not args or args[0] not in jobs:
        configure_logging()
        given = f"unknown job {args[0]!r}; " if args and not args[0].startswith("-") else ""
        log.error("error: %sname the job first (%s)", given, _USAGE)
        return EXIT_BAD_INPUT
    settings_cls, run = jobs[args[0]]
    settings = parse_settings(
        settings_cls,
        _bare_booleans(settings_cls, args[1:]),
        prog=f"python -m monitoring {args[0]}",
    )
    configure_logging(getattr(settings, "log_level", "INFO"))
    try:
        return run(settings)
    except MonitoringError as exc:
        log.error("python -m monitoring %s: error: %s", args[0], exc)
        return exc.exit_code
    except Exception as exc:  # a defect: its own exit status, never 0 or 1
        log.error(
            "python -m monitoring %s: internal error (%s: %s); no report written; "
            "run with --log_level DEBUG for the traceback",
            args[0],
            type(exc).__name__,
            str(exc).splitlines()[0][:300] if str(exc) else "",
        )
        log.debug("the traceback of the internal error", exc_info=True)
        return EXIT_INTERNAL


def _bare_booleans(settings_cls: type[BaseSettings], args: list[str]) -> list[str]:
    """``--fail_on_drift`` alone means ``--fail_on_drift true``."""
    flags = {f"--{n}" for n, f in settings_cls.model_fields.items() if f.annotation is bool}
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in flags and (i + 1 == len(args) or args[i + 1].startswith("--")):
            out.append("true")
    return out


def _drift(settings: BaseSettings) -> int:
    from monitoring.drift import run_drift
    from monitoring.html import drift_page
    from monitoring.publish import drift_metrics, publish

    assert isinstance(settings, DriftSettings)
    mlflow = target(settings.log_to_mlflow, settings.tracking_uri, settings.mlflow_experiment)
    import pyarrow as pa

    # One allocator for Arrow and NumPy (mimalloc keeps freed pages per thread), and
    # one that returns a freed batch to the system at once.
    pa.set_memory_pool(pa.system_memory_pool())
    _return_freed_blocks()
    result = run_drift(settings)
    report, verdict = result.report, result.report.verdict
    delivery = publish(
        report,
        html=drift_page(report, result.histograms),
        metrics=drift_metrics(report),
        output=settings.output,
        pushgateway=settings.pushgateway,
        alert_webhook=settings.alert_webhook,
        alert=verdict.dataset_drift or verdict.status == "data_quality_failure",
        mlflow=mlflow,
    )
    log.info(
        "%s: %d of %d raw-field groups drift (%s)%s; seasonal: %s; %d current rows%s; report %s%s",
        verdict.status,
        len(verdict.drifted_groups),
        verdict.groups_tested,
        ", ".join(verdict.drifted_features) or "none",
        "".join(f"; {reason}" for reason in verdict.reasons),
        ", ".join(verdict.seasonal_features) or "none",
        report.current.rows,
        _refused(report.current.rows_refused, len(report.current.files_skipped)),
        delivery.written["html"],
        _run(delivery),
        extra=_outcome(verdict.status, delivery),
    )
    failed = verdict.dataset_drift or verdict.status == "data_quality_failure"
    return EXIT_VERDICT if settings.fail_on_drift and failed else 0


def _refused(rows_refused: Mapping[str, int], files_skipped: int) -> str:
    """``, 12 rows refused, 1 file skipped`` (empty when none): the summary's counts."""
    text = ""
    if rows_refused:
        text += f", {sum(rows_refused.values())} rows refused"
    if files_skipped:
        text += f", {files_skipped} file(s) skipped"
    return text


def _return_freed_blocks() -> None:
    """Have glibc map every block of 128 KiB or more on its own, and unmap it when freed.

    By default glibc raises that threshold as large blocks are freed, and then keeps
    each batch's freed columns in its heap: the drift job's memory grew by tens of MiB
    over its first batches, and stayed high when SciPy was imported for the p-values.
    Other C libraries (musl) have no such heap, or no ``mallopt``: nothing to do there.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        log.debug("mallopt is not available; the allocator's defaults stand")


def _performance(settings: BaseSettings) -> int:
    from monitoring.html import performance_page
    from monitoring.performance import run_performance
    from monitoring.publish import performance_metrics, publish

    assert isinstance(settings, PerformanceSettings)
    mlflow = target(settings.log_to_mlflow, settings.tracking_uri, settings.mlflow_experiment)
    report = run_performance(settings)
    retrain = report.verdict.retrain_recommended
    delivery = publish(
        report,
        html=performance_page(report),
        metrics=performance_metrics(report),
        output=settings.output,
        pushgateway=settings.pushgateway,
        alert_webhook=settings.alert_webhook,
        alert=retrain,
        mlflow=mlflow,
    )
    latest = report.latest_by_version.get(str(report.model_version))
    figures = ""
    if latest is not None and latest.scores is not None:
        scores, training = latest.scores, report.training_metrics
        figures = (
            f"; version {report.model_version}, latest window: accuracy "
            f"{scores.accuracy:.3f} [{scores.accuracy_ci[0]:.3f}, "
            f"{scores.accuracy_ci[1]:.3f}], macro-F1 {scores.macro_f1:.3f} "
            f"(training {training.get('accuracy', float('nan')):.3f} / "
            f"{training.get('macro_f1', float('nan')):.3f}), majority-class accuracy "
            f"{scores.majority_accuracy:.3f}, coverage {latest.coverage:.0%}"
        )
    log.info(
        "%s%s%s; report %s%s",
        report.status,
        figures,
        _refused(
            {**report.current.rows_refused, **report.labels.rows_refused},
            len(report.current.files_skipped) + len(report.labels.files_skipped),
        ),
        delivery.written["html"],
        _run(delivery),
        extra=_outcome(report.status, delivery),
    )
    return EXIT_VERDICT if settings.fail_on_degradation and retrain else 0


def _run(delivery: Delivery) -> str:
    return f"; MLflow run {delivery.mlflow_run_id}" if delivery.mlflow_run_id else ""


def _outcome(status: str, delivery: Delivery) -> dict[str, object]:
    """The summary line's fields of its own, for a log pipeline."""
    return {
        "status": status,
        "report": delivery.written["json"],
        **({"mlflow_run_id": delivery.mlflow_run_id} if delivery.mlflow_run_id else {}),
        **({"delivery_errors": list(delivery.errors)} if delivery.errors else {}),
    }


def _simulate(settings: BaseSettings) -> int:
    from monitoring.simulate import run_simulation

    assert isinstance(settings, SimulateSettings)
    summary = run_simulation(settings)
    log.info(
        "sent %d requests (%d answered), %d rows labelled in %s s; labels in %s",
        summary["requests_sent"],
        summary["requests_answered"],
        summary["rows_labelled"],
        summary["seconds"],
        summary["labels_out"],
        extra=summary,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
