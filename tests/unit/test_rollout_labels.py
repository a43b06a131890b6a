"""`rollout run --labels`: labels joined to the captures of one interval (rollout/labels.py),
and what the run does with the accuracy check (rollout/progressive.py), on fixed numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rollout.analysis import Thresholds, VersionSample
from rollout.errors import LabelsUnavailable, RolloutError
from rollout.labels import Labelled, check_location, labelled_by_version
from rollout.progressive import Delivery, Options
from rollout.state import CanaryState

SINCE = datetime(2026, 3, 14, 10, 59, 50, tzinfo=UTC)
UNTIL = SINCE + timedelta(seconds=30)


def capture(directory: Path, rows: list[tuple[datetime, str, int, str, str]]) -> None:
    """One capture file per hour, as the transformer writes them (date=/hour= partitions)."""
    for hour in sorted({r[0].replace(minute=0, second=0) for r in rows}):
        part = directory / hour.strftime("date=%Y-%m-%d/hour=%H")
        part.mkdir(parents=True, exist_ok=True)
        mine = [r for r in rows if r[0].replace(minute=0, second=0) == hour]
        names = ["timestamp", "request_id", "row", "model_version", "predicted_class"]
        columns = list(zip(*mine, strict=True))
        table = pa.table(
            {
                names[0]: pa.array(columns[0], pa.timestamp("us", tz="UTC")),
                **{n: list(c) for n, c in zip(names[1:], columns[1:], strict=True)},
                "probabilities": [[0.5, 0.5]] * len(mine),  # the store has more columns
            }
        )
        pq.write_table(table, part / f"part-{hour:%H}.parquet")


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, str]:
    at = SINCE + timedelta(seconds=5)  # 10:59:55, in the window
    later = SINCE + timedelta(seconds=15)  # 11:00:05, the next hour's file, in the window
    rows = [
        (at, "007", 0, "2", "low"),  # stable, right
        (at, "007", 1, "2", "high"),  # stable, wrong
        (later, "a", 0, "2", "low"),  # stable, right
        (at, "b", 0, "3", "low"),  # canary, right
        (later, "c", 0, "3", "low"),  # canary, wrong
        (later, "d", 0, "3", "medium"),  # canary, no label
        (SINCE - timedelta(seconds=1), "e", 0, "3", "low"),  # before the window
        (UNTIL, "f", 0, "3", "low"),  # at its end: outside
        (at, "g", 0, "3", "low"),  # the id g, captured twice: ambiguous
        (later, "g", 0, "2", "low"),
    ]
    capture(tmp_path / "capture", rows)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "day.csv").write_text(
        "request_id,row,label\n"
        "007,0,low\n007,1,low\na,0,low\nb,0,low\nc,0,high\n"
        "e,0,high\nf,0,high\ng,0,low\n"
        "h,x,low\n"  # row is not an integer: refused
        "a,1,huge\n"  # not a class any captured row holds: refused
    )
    (tmp_path / "labels" / ".partial.csv.tmp").write_text("garbage")  # a writer's: never read
    return str(tmp_path / "capture"), str(tmp_path / "labels")


def test_each_version_gets_its_labelled_and_correct_rows_of_the_interval(
    store: tuple[str, str],
) -> None:
    found = labelled_by_version(*store, SINCE, UNTIL)
    assert found.of("2") == (2, 3) and found.of("3") == (1, 2)
    assert found.captured_rows == 8  # e and f are outside the window
    assert found.refused == {
        "captured: request_id shared by several captured requests: not joined": 2,
        "labels: row is not a non-negative integer": 1,
        "labels: label not one of the model's classes": 1,
        "labels: request_id shared by several captured requests: not joined": 1,
    }
    assert found.skipped_files == []


def test_an_hour_partition_outside_the_interval_is_not_opened(store: tuple[str, str]) -> None:
    current, labels = store
    (Path(current) / "date=2026-03-13" / "hour=09").mkdir(parents=True)
    (Path(current) / "date=2026-03-13" / "hour=09" / "old.parquet").write_text("not parquet")
    assert labelled_by_version(current, labels, SINCE, UNTIL).skipped_files == []
    (Path(current) / "date=2026-03-14" / "hour=11" / "broken.parquet").write_text("not parquet")
    (skipped,) = labelled_by_version(current, labels, SINCE, UNTIL).skipped_files
    assert "broken.parquet" in skipped


def test_a_missing_location_is_an_error_before_the_run_and_a_skip_during_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(RolloutError, match="labels=.*does not exist"):
        check_location(str(tmp_path / "nowhere"), "labels")
    with pytest.raises(LabelsUnavailable, match="does not exist"):
        labelled_by_version(str(tmp_path / "nowhere"), str(tmp_path), SINCE, UNTIL)


# The run, with the InferenceService and Prometheus played by fakes: what the accuracy
# check does to its verdict. (tests/integration/test_progressive_delivery.py runs it real.)

MIX = {"low": 300.0, "medium": 400.0, "high": 300.0}
FAST = [(0.001, 900.0), (0.01, 1000.0), (float("inf"), 1000.0)]


class FakeRollout:
    """A Standard-mode InferenceService that does at once what it is told."""

    def __init__(self) -> None:
        self.state = CanaryState("Standard", "stable", "models:/m/2", None, None, "models:/m/2")
        self.moves: list[str] = []

    def read(self) -> tuple[dict[str, Any], CanaryState]:
        return {}, self.state

    def wait(self, ready: Any, what: str) -> tuple[dict[str, Any], CanaryState]:
        assert ready(self.state), what
        return {}, self.state

    def start(self, version: int, percent: int, check_version: Any) -> CanaryState:
        self.moves.append(f"start {percent}")
        uri = f"models:/m/{version}"
        self.state = CanaryState("Standard", "canary", "models:/m/2", uri, percent, uri)
        return self.state

    def shift(self, percent: int) -> CanaryState:
        self.moves.append(f"shift {percent}")
        s = self.state
        self.state = CanaryState("Standard", "canary", s.stable_uri, s.canary_uri, percent, "")
        return self.state

    def promote(self) -> None:
        self.moves.append("promote")

    def rollback(self) -> None:
        self.moves.append("rollback")


class FakePrometheus:
    """Both versions: 1000 requests, all 2xx, fast, the same class mix."""

    def sample(
        self, version: str, seconds: int, at: float, selector: str = ""
    ) -> tuple[VersionSample, dict[str, str]]:
        return VersionSample({"2xx": 1000.0}, FAST, MIX), {"requests": f"v{version}"}


def run(ground_truth: Any = None) -> tuple[FakeRollout, dict[str, Any], list[str]]:
    rollout, lines = FakeRollout(), list[str]()
    clock = iter(range(1_800_000_000, 1_800_001_000, 10))
    delivery = Delivery(
        cast(Any, rollout),
        cast(Any, FakePrometheus()),
        Options(version=3, steps=(25, 50, 100), interval=30, thresholds=Thresholds()),
        check_version=lambda name, version: None,
        say=lines.append,
        ground_truth=ground_truth,
        sleep=lambda seconds: None,
        now=lambda: float(next(clock)),
    )
    return rollout, delivery.run(), lines


def verdicts(report: dict[str, Any], name: str) -> list[str]:
    return [
        c["verdict"]
        for step in report["steps"]
        for attempt in step["attempts"]
        for c in attempt["checks"]
        if c["name"] == name
    ]


def test_without_labels_the_accuracy_check_is_skipped_and_the_rest_decides() -> None:
    rollout, report, lines = run()
    assert report["outcome"] == "promoted" and rollout.moves == ["start 25", "shift 50", "promote"]
    assert verdicts(report, "accuracy") == ["skipped", "skipped"]
    assert "step 25 %: accuracy skipped: no labels given (--labels)" in lines


def test_a_canary_less_accurate_on_the_interval_is_rolled_back_naming_accuracy() -> None:
    windows: list[tuple[datetime, datetime]] = []

    def ground_truth(since: datetime, until: datetime) -> Labelled:
        windows.append((since, until))
        return Labelled(correct={"2": 410, "3": 300}, labelled={"2": 500, "3": 500})

    rollout, report, lines = run(ground_truth)
    assert report["outcome"] == "rolled_back" and rollout.moves == ["start 25", "rollback"]
    assert [f["check"] for f in report["failed_checks"]] == ["accuracy"]
    assert lines[-1] == "decision: roll back v3 (failed: accuracy)"
    (check,) = [c for c in report["steps"][0]["attempts"][0]["checks"] if c["name"] == "accuracy"]
    assert check["values"]["canary_accuracy"] == 0.6 and check["values"]["stable_accuracy"] == 0.82
    # the interval the labels are joined on is the one Prometheus was asked about
    (window,) = windows
    assert window[1] - window[0] == timedelta(seconds=report["steps"][0]["attempts"][0][
        "window_seconds"])  # fmt: skip
    assert window[0].tzinfo is UTC


def test_labels_that_cannot_be_read_skip_the_check_and_the_run_goes_on() -> None:
    def unreadable(since: datetime, until: datetime) -> Labelled:
        raise LabelsUnavailable("'s3://labels' cannot be read: connection refused")

    _, report, lines = run(unreadable)
    assert report["outcome"] == "promoted"
    assert verdicts(report, "accuracy") == ["skipped", "skipped"]
    assert any("accuracy skipped: labels unavailable: 's3://labels'" in line for line in lines)
