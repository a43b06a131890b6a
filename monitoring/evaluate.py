"""``python -m monitoring.evaluate``: what the drift job's verdicts mean, measured.

Traffic is made with the project's own generator (:mod:`monitoring.traffic`), its
features with the transformer's :func:`~transformer.features.compute_features`, and
the reference is a training baseline made as training makes it (the default training
run's split and sample). The job runs in-process on every window through one seam,
:func:`judge`, the only code that reads its result. What is measured, per rows per
window (``--sizes``):

- **false alarms**: the dataset alarms of unshifted windows of each kind:
  ``same_dates`` (days of the training period), ``later_month`` (a month of the
  generator's last year shown 52 weeks later, with its yearly price rise; window *i*
  takes month *i* mod 12 + 1), ``day`` (one day of the training period, as a 24 h
  window holds it);
- **the shipped schedule**: ``--run_days`` days after the training period written as
  a capture store (``date=YYYY-MM-DD/hour=HH`` partitions, a timestamp per row), and
  the job run as the CronJob runs it, at :15 of every hour with ``--window 24h``
  (through ``now``); the days with any alarm are counted;
- **power**: for each shift (:func:`monitoring.traffic.make_shifts`), the smallest
  magnitude of its grid caught in at least 90 % of windows. Magnitudes are tried in
  ascending order; one stops as soon as its outcome against 90 % is decided (enough
  alarms, or too many misses), and the grid stops at the first that passes: the
  answer all windows would give, from fewer windows;
- optionally (``--million_windows``), windows of a million rows with the price moved
  0.02 sd, which should not alarm.

Windows are seeded by (seed, kind, size, index): a shifted window moves the very rows
of the unshifted window of the same index, and reruns print the same table. Where
Evidently, NannyML or Alibi Detect can be imported, :mod:`monitoring.anchors` judges
the first ``--anchor_windows`` windows of every cell with each of them.

One process, one thread: ``python -m monitoring.evaluate`` (100 windows per cell) is
about seven minutes of CPU; the benchmark adds ``--million_windows 10``.
docs/drift-evaluation.md keeps the tables measured, with their commands, dates and commits.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from common.core.cli import parse_settings
from common.core.contract import FEATURE_NAMES, feature_matrix
from common.core.logs import configure_logging
from monitoring.drift import run_drift
from monitoring.errors import BadInput, MonitoringError
from monitoring.settings import DriftSettings, EvaluateSettings, JobSettings
from monitoring.traffic import (
    CATEGORY,
    Period,
    Records,
    Shift,
    Window,
    World,
    learn_world,
    make_shifts,
)
from training.baseline import baseline_frame
from training.dataset import FIRST_DAY, LABEL, LAST_DAY, generate_sales, split_by_time
from training.settings import TrainingSettings
from transformer.features import CATEGORIES, compute_features
from transformer.schema import RAW_FIELDS

__all__ = [
    "CRONJOB_MINUTE",
    "CRONJOB_WINDOW",
    "KINDS",
    "POWER",
    "Plan",
    "Table",
    "Tally",
    "Verdict",
    "evaluate",
    "judge",
    "main",
]

#: The shipped CronJob (chart values ``monitoring.drift``): every hour at :15 ...
CRONJOB_MINUTE: Final = 15
#: ... over the last 24 hours.
CRONJOB_WINDOW: Final = "24h"
#: A shift is caught when at least this share of its windows alarm.
POWER: Final = 0.9
#: Unshifted window kinds, in the order of their seeds.
KINDS: Final[tuple[str, ...]] = ("same_dates", "later_month", "day")
#: The price shift, in sd, of the million-row check, and the size of its windows.
MILLION_SHIFT: Final = 0.02
MILLION_ROWS: Final = 1_000_000

_KIND_LABELS: Final = {"same_dates": "same dates", "later_month": "later month", "day": "24 h day"}
_RUN_SEED: Final = len(KINDS)
_JOB: Final = "job"

Features = dict[str, npt.NDArray[Any]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Verdict:
    """What a detector said of one window."""

    dataset_drift: bool
    drifted_features: list[str]


def judge(settings: DriftSettings, now: datetime | None = None) -> Verdict:
    """Run the drift job once, in-process, and read its verdict.

    The one place that reads the job's result: when the job's result changes, this
    function changes, and the evaluation with it. The job's progress lines on stderr
    are swallowed.
    """
    with contextlib.redirect_stderr(io.StringIO()):
        result = run_drift(settings, now)
    verdict = result.report.verdict
    return Verdict(verdict.dataset_drift, list(verdict.drifted_features))


@dataclass
class Tally:
    """How one detector answered a set of windows."""

    windows: int = 0
    alarms: int = 0
    features: Counter[str] = field(default_factory=Counter)
    """How often each feature drifted."""
    alarmed: list[int] = field(default_factory=list)
    """Which windows alarmed, by position (0 the first judged)."""

    def add(self, verdict: Verdict) -> None:
        if verdict.dataset_drift:
            self.alarmed.append(self.windows)
        self.windows += 1
        self.alarms += verdict.dataset_drift
        self.features.update(verdict.drifted_features)

    def caught(self, planned: int) -> bool | None:
        """Whether at least :data:`POWER` of ``planned`` windows alarm; None while open.

        Examples
        --------
        >>> tally = Tally(windows=2, alarms=0)
        >>> tally.caught(20), tally.caught(10)
        (None, False)
        """
        need = math.ceil(POWER * planned)
        if self.alarms >= need:
            return True
        if self.windows - self.alarms > planned - need:
            return False
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "alarms": self.alarms,
            "rate": self.alarms / self.windows if self.windows else None,
            "features": dict(self.features.most_common()),
            "alarmed": self.alarmed,
        }

    def __str__(self) -> str:
        return f"{self.alarms}/{self.windows}"


@dataclass(frozen=True)
class Plan:
    """What to evaluate (:class:`~monitoring.settings.EvaluateSettings`, parsed)."""

    windows: int
    sizes: tuple[int, ...]
    kinds: tuple[str, ...]
    shift_kinds: tuple[str, ...]
    shifts: Mapping[str, tuple[float, ...]]
    """Each shift's magnitudes, ascending."""
    run_days: int
    million_windows: int
    anchors: tuple[str, ...]
    """The anchors to run where they can be imported."""
    anchor_windows: int
    pool_rows: int
    seed: int

    @classmethod
    def from_settings(cls, settings: EvaluateSettings) -> Plan:
        """The plan ``settings`` describe; BadInput names the flag that is wrong."""
        return cls(
            windows=settings.windows,
            sizes=tuple(_numbers(settings.sizes, "--sizes", int)),
            kinds=_known(settings.kinds, "--kinds"),
            shift_kinds=_known(settings.shift_kinds, "--shift_kinds"),
            shifts=_grids(settings.shifts),
            run_days=settings.run_days,
            million_windows=settings.million_windows,
            anchors=_anchor_names(settings.anchors),
            anchor_windows=settings.anchor_windows,
            pool_rows=settings.pool_rows,
            seed=settings.seed,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "sizes": list(self.sizes),
            "kinds": list(self.kinds),
            "shift_kinds": list(self.shift_kinds),
            "shifts": {name: list(grid) for name, grid in self.shifts.items()},
            "run_days": self.run_days,
            "million_windows": self.million_windows,
            "anchor_windows": self.anchor_windows,
            "pool_rows": self.pool_rows,
            "seed": self.seed,
        }


def _numbers(text: str, flag: str, kind: Callable[[str], Any]) -> list[Any]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise BadInput(f"{flag}={text!r} is invalid: expected numbers separated by commas") from exc
    if not values or min(values) <= 0:
        raise BadInput(f"{flag}={text!r} is invalid: expected positive numbers")
    return sorted(values)


def _anchor_names(text: str) -> tuple[str, ...]:
    from monitoring.anchors import ANCHORS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ANCHORS]
    if unknown:
        raise BadInput(
            f"--anchors={text!r} is invalid: {unknown} unknown; expected some of {list(ANCHORS)}"
        )
    return names


def _known(text: str, flag: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise BadInput(f"{flag}={text!r} is invalid: {unknown} unknown; expected some of {KINDS}")
    return names


def _grids(text: str) -> dict[str, tuple[float, ...]]:
    """``price;category=2,5``: each named shift with its default magnitudes or these."""
    defaults = make_shifts(1.0)
    grids: dict[str, tuple[float, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, magnitudes = part.partition("=")
        name = name.strip()
        if name not in defaults:
            raise BadInput(
                f"--shifts={text!r} is invalid at {part!r}: expected some of {list(defaults)}, "
                "separated by ';', each optionally =magnitude,magnitude (price=0.05,0.1)"
            )
        grid = _numbers(magnitudes, "--shifts", float) if magnitudes else defaults[name].grid
        grids[name] = tuple(grid)
    return grids


@dataclass(frozen=True)
class Reference:
    """The training baseline the job compares windows with, and what it holds."""

    frame: pd.DataFrame
    seed: int
    """Training's seed: the generator's world."""
    training_rows: int
    first_day: str
    cutoff: int
    """First day after the training period, counted from FIRST_DAY."""
    price_sd: float
    shares: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        last = str(FIRST_DAY + np.timedelta64(self.cutoff - 1, "D"))
        return {
            "rows": len(self.frame),
            "made_from": f"generate_sales({self.training_rows}, seed={self.seed}), "
            "training split, baseline_frame",
            "training_days": [self.first_day, last],
            "unit_price_sd": self.price_sd,
            "shares": self.shares,
        }


@functools.cache
def training_reference() -> Reference:
    """The baseline the default training run logs: generated rows, split, sampled."""
    defaults = {name: f.default for name, f in TrainingSettings.model_fields.items()}
    seed = int(defaults["seed"])
    sales = generate_sales(int(defaults["rows"]), seed)
    train, test = split_by_time(sales, float(defaults["test_fraction"]))
    # As training.train.features_of does (without importing scikit-learn).
    computed: Mapping[str, Any] = _features({name: train[name].to_numpy() for name in RAW_FIELDS})
    features = feature_matrix(computed)
    frame = baseline_frame(features, train[LABEL].to_numpy(), int(defaults["baseline_rows"]), seed)
    cutoff = int(
        np.datetime64(test["date"].iloc[0], "D").astype(np.int64) - FIRST_DAY.astype(np.int64)
    )
    return Reference(
        frame=frame,
        seed=seed,
        training_rows=int(defaults["rows"]),
        first_day=str(train["date"].iloc[0]),
        cutoff=cutoff,
        price_sd=float(frame["unit_price"].std()),
        shares={
            CATEGORY: float((frame["category_code"] == CATEGORIES.index(CATEGORY)).mean()),
            "discounted": float((frame["discount_pct"] > 0).mean()),
            "promoted": float(frame["on_promotion"].mean()),
        },
    )


@functools.cache
def _world(rows: int, seed: int) -> World:
    """The generator's world (small), read off ``rows`` generated rows (not kept)."""
    return learn_world(generate_sales(rows, seed))


class _Job:
    """The drift job on a window's features, written to a file it reads."""

    def __init__(self, reference: Path, work: Path) -> None:
        self.reference = reference
        self.current = work / "current.parquet"
        self.output = work / "report"

    def __call__(self, features: Features) -> Verdict:
        pq.write_table(pa.table(features), self.current)
        return judge(self.settings(self.current, window=None))

    def settings(self, current: Path, window: str | None) -> DriftSettings:
        # Given as keywords: the job's other settings are its defaults, or MONITORING_*
        # variables, as for the CronJob.
        given: dict[str, Any] = {
            "reference": str(self.reference),
            "current": str(current),
            "output": str(self.output),
            "window": window,
            "since": None,
            "until": None,
        }
        return DriftSettings(**given)


@dataclass(frozen=True)
class FalseAlarms:
    """Unshifted windows of one kind and size, per detector."""

    kind: str
    size: int
    tallies: dict[str, Tally]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": self.size,
            "detectors": {name: t.as_dict() for name, t in self.tallies.items()},
        }


@dataclass(frozen=True)
class ScheduleRun:
    """The job run hourly over a capture store, as the shipped CronJob runs it."""

    size: int
    days: list[str]
    alarmed_days: list[str]
    runs: Tally
    """One window per hourly run."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "schedule": f"{CRONJOB_MINUTE} * * * *",
            "window": CRONJOB_WINDOW,
            "days": self.days,
            "alarmed_days": self.alarmed_days,
            "runs": self.runs.as_dict(),
        }


@dataclass(frozen=True)
class Power:
    """One shift on one kind and size: tallies per magnitude, the smallest caught."""

    kind: str
    shift: Shift
    size: int
    steps: list[tuple[float, dict[str, Tally]]]
    smallest: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "shift": self.shift.name,
            "unit": self.shift.unit,
            "description": self.shift.description,
            "size": self.size,
            "smallest_caught": self.smallest,
            "magnitudes": [
                {"magnitude": m, "detectors": {n: t.as_dict() for n, t in tallies.items()}}
                for m, tallies in self.steps
            ],
        }


@dataclass(frozen=True)
class Table:
    """The evaluation's results; :meth:`render` and :meth:`as_dict` show them."""

    plan: Plan
    reference: Reference
    world: dict[str, Any]
    job_settings: dict[str, Any]
    detectors: list[str]
    skipped: dict[str, str]
    false_alarms: list[FalseAlarms]
    runs: list[ScheduleRun]
    power: list[Power]
    million: Tally | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.as_dict(),
            "reference": self.reference.as_dict(),
            "world": self.world,
            "job_settings": self.job_settings,
            "detectors": self.detectors,
            "skipped": self.skipped,
            "false_alarms": [f.as_dict() for f in self.false_alarms],
            "schedule_runs": [r.as_dict() for r in self.runs],
            "power": [p.as_dict() for p in self.power],
            "million": None
            if self.million is None
            else {"rows": MILLION_ROWS, "price_shift_sd": MILLION_SHIFT, **self.million.as_dict()},
        }

    def render(self) -> str:
        """The table as text: the same for the same plan."""
        return _render(self)


def evaluate(plan: Plan, progress: Progress | None = None) -> Table:
    """Run the evaluation ``plan`` describes."""
    say = progress or (lambda line: None)
    reference = training_reference()
    world = _world(plan.pool_rows, reference.seed)
    anchors, skipped = _anchors(plan)
    with tempfile.TemporaryDirectory(prefix="drift-evaluation-") as tmp:
        work = Path(tmp)
        reference_path = work / "reference.parquet"
        reference.frame.to_parquet(reference_path, index=False)
        job = _Job(reference_path, work)
        run = _Evaluation(plan, world, reference, job, anchors, say)
        false_alarms = [run.false_alarms(k, n) for k in plan.kinds for n in plan.sizes]
        runs = [run.schedule(n, work) for n in plan.sizes] if plan.run_days else []
        shifts = make_shifts(reference.price_sd)
        power = [
            run.power(kind, shifts[name], grid, size)
            for kind in plan.shift_kinds
            for name, grid in plan.shifts.items()
            for size in plan.sizes
        ]
        million = run.million() if plan.million_windows else None
        job_settings = _job_settings(job.settings(reference_path, window=None))
    return Table(
        plan=plan,
        reference=reference,
        world={
            "pool_rows": plan.pool_rows,
            "unseen_promotions": world.unseen_promotions,
            "markdown_rate": world.markdown_rate,
        },
        job_settings=job_settings,
        detectors=[_JOB, *anchors],
        skipped=skipped,
        false_alarms=false_alarms,
        runs=runs,
        power=power,
        million=million,
    )


Anchor = Callable[[pd.DataFrame, pd.DataFrame], Verdict]


def _anchors(plan: Plan) -> tuple[dict[str, Anchor], dict[str, str]]:
    if not plan.anchors:
        return {}, {}
    from monitoring import anchors

    return anchors.load(plan.anchors)


def _job_settings(settings: DriftSettings) -> dict[str, Any]:
    """The job's verdict settings: DriftSettings' own fields (and min_rows), no paths."""
    own = set(DriftSettings.model_fields) - set(JobSettings.model_fields) | {"min_rows"}
    return {
        k: v
        for k, v in settings.model_dump().items()
        if k in own and k not in ("reference", "fail_on_drift")
    }


class _Evaluation:
    """The windows, and every detector on them."""

    def __init__(
        self,
        plan: Plan,
        world: World,
        reference: Reference,
        job: _Job,
        anchors: Mapping[str, Anchor],
        say: Progress,
    ) -> None:
        self.plan = plan
        self.world = world
        self.reference = reference
        self.job = job
        self.anchors = anchors
        self.say = say
        self.reference_features = reference.frame[list(FEATURE_NAMES)]
        self.started = time.perf_counter()

    @property
    def detectors(self) -> list[str]:
        return [_JOB, *self.anchors]

    def planned(self, detector: str) -> int:
        """Windows per cell ``detector`` judges."""
        if detector == _JOB:
            return self.plan.windows
        return min(self.plan.windows, self.plan.anchor_windows)

    def window(self, kind: str, size: int, index: int) -> Window:
        rng = np.random.default_rng([self.plan.seed, KINDS.index(kind), size, index])
        cutoff = self.reference.cutoff
        if kind == "same_dates":
            period = Period(0, cutoff)
        elif kind == "later_month":
            last_year = int(str(LAST_DAY)[:4])
            period = Period.month(last_year, index % 12 + 1, years_later=1)
        else:
            day = int(rng.integers(0, cutoff))
            period = Period(day, day + 1)
        cells = self.world.cells(period, size, rng)
        return Window(self.world, cells, self.world.records(cells, rng))

    def judge(self, records: Records, detectors: Iterable[str]) -> dict[str, Verdict]:
        features: Features = _features(records)
        verdicts: dict[str, Verdict] = {}
        frame: pd.DataFrame | None = None
        for name in detectors:
            if name == _JOB:
                verdicts[name] = self.job(features)
                continue
            if frame is None:
                frame = pd.DataFrame(features)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the libraries' notices, per window
                verdicts[name] = self.anchors[name](self.reference_features, frame)
        return verdicts

    def false_alarms(self, kind: str, size: int) -> FalseAlarms:
        tallies = {name: Tally() for name in self.detectors}
        for index in range(self.plan.windows):
            active = [n for n in self.detectors if index < self.planned(n)]
            window = self.window(kind, size, index)
            for name, verdict in self.judge(window.records, active).items():
                tallies[name].add(verdict)
        self._said(f"{kind} {_size(size)}: false alarms", tallies)
        return FalseAlarms(kind, size, tallies)

    def power(self, kind: str, shift: Shift, grid: Sequence[float], size: int) -> Power:
        searching = list(self.detectors)
        smallest: dict[str, float | None] = dict.fromkeys(searching)
        steps: list[tuple[float, dict[str, Tally]]] = []
        for magnitude in grid:
            if not searching:
                break
            tallies = {name: Tally() for name in searching}
            open_ = list(searching)
            for index in range(self.plan.windows):
                open_ = [n for n in open_ if tallies[n].caught(self.planned(n)) is None]
                if not open_:
                    break
                window = self.window(kind, size, index)
                rng = np.random.default_rng(
                    [self.plan.seed, KINDS.index(kind), size, index, *_code(shift, magnitude)]
                )
                records = shift.apply(window, magnitude, rng)
                for name, verdict in self.judge(records, open_).items():
                    tallies[name].add(verdict)
            steps.append((magnitude, tallies))
            for name, tally in tallies.items():
                if tally.caught(self.planned(name)):
                    smallest[name] = magnitude
                    searching.remove(name)
            self._said(f"{kind} {_size(size)}: {shift.name} {magnitude:g} {shift.unit}", tallies)
        return Power(kind, shift, size, steps, smallest)

    def schedule(self, size: int, work: Path) -> ScheduleRun:
        """``run_days`` days after training, and the day before, as a capture store."""
        rng = np.random.default_rng([self.plan.seed, _RUN_SEED, size])
        store = work / f"capture-{size}"
        first = self.reference.cutoff
        days = range(first, first + self.plan.run_days)
        for day in range(first - 1, days.stop):
            cells = self.world.cells(Period(day, day + 1), size, rng)
            _write_capture(store, day, _features(self.world.records(cells, rng)), rng)
        runs = Tally()
        alarmed: list[str] = []
        for day in days:
            midnight = datetime.fromisoformat(str(FIRST_DAY + day)).replace(tzinfo=UTC)
            verdicts = [
                judge(
                    self.job.settings(store, window=CRONJOB_WINDOW),
                    midnight + timedelta(hours=hour, minutes=CRONJOB_MINUTE),
                )
                for hour in range(24)
            ]
            for verdict in verdicts:
                runs.add(verdict)
            if any(v.dataset_drift for v in verdicts):
                alarmed.append(midnight.date().isoformat())
        shutil.rmtree(store)
        dates = [str(FIRST_DAY + day) for day in days]
        self._said(f"schedule {_size(size)}: {len(alarmed)}/{len(dates)} days", {_JOB: runs})
        return ScheduleRun(size, dates, alarmed, runs)

    def million(self) -> Tally:
        """Windows of a million rows, unit_price moved by :data:`MILLION_SHIFT` sd."""
        shift = make_shifts(self.reference.price_sd)["price"]
        tally = Tally()
        for index in range(self.plan.million_windows):
            window = self.window("same_dates", MILLION_ROWS, index)
            rng = np.random.default_rng(
                [self.plan.seed, 0, MILLION_ROWS, index, *_code(shift, MILLION_SHIFT)]
            )
            tally.add(self.judge(shift.apply(window, MILLION_SHIFT, rng), [_JOB])[_JOB])
        self._said(f"same_dates 1M: price {MILLION_SHIFT} sd", {_JOB: tally})
        return tally

    def _said(self, what: str, tallies: Mapping[str, Tally]) -> None:
        answers = ", ".join(f"{name} {tally}" for name, tally in tallies.items())
        self.say(f"[{time.perf_counter() - self.started:6.0f} s] {what}: {answers}")


def _features(records: Records) -> Features:
    """The transformer's features of raw records given as NumPy columns."""
    columns: Mapping[str, Any] = records  # compute_features takes sequences; arrays do too
    return compute_features(columns)


def _code(shift: Shift, magnitude: float) -> tuple[int, int]:
    """Seed words of a shift and magnitude, the same whatever the grid."""
    return sum(shift.name.encode()), round(magnitude * 1000)


def _write_capture(store: Path, day: int, features: Features, rng: np.random.Generator) -> None:
    """One day's rows as the transformer's capture writes them: hourly partitions."""
    rows = len(features[FEATURE_NAMES[0]])
    micros = np.sort(rng.integers(0, 86_400_000_000, rows))
    date = FIRST_DAY + np.timedelta64(day, "D")
    table = pa.table(
        {
            "timestamp": pa.array(
                date.astype("datetime64[us]") + micros.astype("timedelta64[us]"),
                pa.timestamp("us", "UTC"),
            ),
            "model_version": pa.array(np.full(rows, "1")),
            **{name: features[name] for name in FEATURE_NAMES},
        }
    )
    bounds = np.searchsorted(micros, np.arange(25) * 3_600_000_000)
    for hour in range(24):
        part = store / f"date={date}" / f"hour={hour:02d}"
        part.mkdir(parents=True)
        start, stop = int(bounds[hour]), int(bounds[hour + 1])
        pq.write_table(table.slice(start, stop - start), part / "part-0.parquet")


def _size(rows: int) -> str:
    """``10k``, ``1M``.

    Examples
    --------
    >>> _size(10_000), _size(1_000_000), _size(2500)
    ('10k', '1M', '2.5k')
    """
    if rows >= 1_000_000 and rows % 100_000 == 0:
        return f"{rows / 1_000_000:g}M"
    return f"{rows / 1000:g}k"


def _render(table: Table) -> str:
    plan, ref = table.plan, table.reference
    shares = ", ".join(f"{name} {share:.1%}" for name, share in ref.shares.items())
    settings = ", ".join(f"{k} {v}" for k, v in table.job_settings.items())
    lines = [
        "Drift evaluation (python -m monitoring.evaluate)",
        f"reference: {len(ref.frame):,} rows of the training baseline "
        f"({ref.as_dict()['made_from']}; days {' to '.join(ref.as_dict()['training_days'])}); "
        f"unit_price sd {ref.price_sd:.3f}; shares of rows: {shares}",
        f"job settings: {settings}",
        f"windows per cell: {plan.windows}"
        + (f" (anchors: the first {plan.anchor_windows})" if len(table.detectors) > 1 else "")
        + f"; seed {plan.seed}; detectors: {', '.join(table.detectors)}"
        + "".join(f"; {name} skipped: {why}" for name, why in table.skipped.items()),
        "",
    ]
    columns = [(size, name) for size in plan.sizes for name in table.detectors]
    header = ["", *(f"{name} {_size(size)}" for size, name in columns)]

    rows: list[list[str]] = []
    by_cell = {(f.kind, f.size): f for f in table.false_alarms}
    for kind in plan.kinds:
        rows.append(
            [
                _KIND_LABELS[kind],
                *(str(by_cell[kind, size].tallies[name]) for size, name in columns),
            ]
        )
    runs = {r.size: r for r in table.runs}
    if runs:
        rows.append(
            [
                f"schedule: days alarmed of {plan.run_days}",
                *(
                    f"{len(runs[size].alarmed_days)}/{plan.run_days}" if name == _JOB else "-"
                    for size, name in columns
                ),
            ]
        )
        rows.append(
            [
                "schedule: hourly runs alarmed",
                *(str(runs[size].runs) if name == _JOB else "-" for size, name in columns),
            ]
        )
    lines += ["False dataset alarms, unshifted (alarms/windows)", *_grid([header, *rows]), ""]

    for kind in plan.shift_kinds:
        rows = []
        cells = {(p.shift.name, p.size): p for p in table.power if p.kind == kind}
        for name in plan.shifts:
            some = cells[name, plan.sizes[0]]
            label = f"{name} ({some.shift.unit})"
            rows.append([label, *(_smallest(cells[name, size], d) for size, d in columns)])
        lines += [
            f"Smallest shift caught in >= {POWER:.0%} of windows ({_KIND_LABELS[kind]})",
            *_grid([header, *rows]),
        ]
        for name in plan.shifts:
            some = cells[name, plan.sizes[0]]
            lines.append(f"  {name}: {some.shift.description}; grid {list(plan.shifts[name])}")
        lines.append("")

    if table.million is not None:
        lines += [
            f"{_size(MILLION_ROWS)} rows, unit_price +{MILLION_SHIFT} sd (no alarm wanted): "
            f"job alarms in {table.million} windows",
            "",
        ]
    lines.append("Features drifting most often (job: windows in which each drifted)")
    for cell in table.false_alarms:
        job = cell.tallies[_JOB]
        months = ""
        if cell.kind == "later_month" and job.alarmed:
            alarmed = sorted({index % 12 + 1 for index in job.alarmed})
            months = f"; alarmed in month(s) {', '.join(map(str, alarmed))}"
        lines.append(f"  {_KIND_LABELS[cell.kind]} {_size(cell.size)}: {_top(job)}{months}")
    for run in table.runs:
        lines.append(f"  schedule {_size(run.size)} (hourly runs): " + _top(run.runs))
    return "\n".join(lines) + "\n"


def _smallest(power: Power, detector: str) -> str:
    found = power.smallest.get(detector)
    if found is not None:
        return f"{found:g}"
    return f"> {power.steps[-1][0]:g}" if power.steps else "-"


def _top(tally: Tally, count: int = 5) -> str:
    if not tally.features:
        return "none"
    return ", ".join(f"{name} {n}" for name, n in tally.features.most_common(count)) + (
        f" (of {tally.windows})"
    )


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; print the table (and write it as JSON with --output)."""
    settings = parse_settings(EvaluateSettings, argv, prog="python -m monitoring.evaluate")
    configure_logging(settings.log_level)
    started = time.perf_counter()
    try:
        plan = Plan.from_settings(settings)
        table = evaluate(plan, progress=lambda line: print(line, file=sys.stderr))
    except MonitoringError as exc:
        print(f"python -m monitoring.evaluate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(table.render(), end="")
    if settings.output:
        Path(settings.output).write_text(json.dumps(table.as_dict(), indent=2) + "\n")
    print(f"evaluated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
