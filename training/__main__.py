"""``python -m training``: make the data, fit, log, register and promote the model.

Prints one JSON line to stdout (model, version, run, test metrics, split sizes); logs
go to stderr as JSON lines. Exit status 0 on success, 1 when the input or MLflow
fails, 2 on a bad flag.
"""

from __future__ import annotations

import json
import logging
import sys

from mlflow.exceptions import MlflowException

from common.core.cli import parse_settings
from common.core.logs import configure_logging
from common.core.redact import redact_text
from training.job import run
from training.settings import TrainingSettings

log = logging.getLogger("training")


def main(argv: list[str] | None = None) -> int:
    """Run the training job with flags from ``argv`` (``sys.argv`` when None)."""
    configure_logging()
    settings = parse_settings(TrainingSettings, argv, prog="python -m training")
    try:
        result = run(settings)
    except ValueError as exc:
        return _fail(f"invalid input: {exc}")
    except OSError as exc:
        return _fail(f"cannot read or write a file: {exc}")
    except MlflowException as exc:
        return _fail(f"MLflow failed: {_first_line(exc.message)}")
    print(json.dumps(result.summary()), flush=True)
    return 0


def _fail(message: str) -> int:
    print(f"python -m training: error: {redact_text(message)}", file=sys.stderr)
    return 1


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail given"


if __name__ == "__main__":
    raise SystemExit(main())
