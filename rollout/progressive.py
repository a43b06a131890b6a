"""``python -m rollout run VERSION``: step the canary up, judge each step, promote or roll back.

For each step below 100 %: give the canary that share (``start`` the first time,
``shift`` after), wait until KServe reports the split and the canary's revision ready,
wait ``interval`` seconds, then ask Prometheus what each version did over that interval
(:mod:`rollout.queries`) and judge the canary against the stable
(:func:`rollout.analysis.analyse`):

- every check passes: the next step (after the last one: promote);
- a check fails: counted; ``failure_limit`` failed checks roll back, fewer analyse the
  same step again on a fresh interval;
- too little traffic for a verdict: the interval grows, up to ``max_wait`` seconds, then
  the run stops without promoting (the canary keeps its share; exit 2).

Every decision is one line through ``say``; :meth:`Delivery.run` returns the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common.core.redact import redact_text
from rollout.actions import Rollout
from rollout.analysis import Check, Thresholds, accuracy_check, analyse
from rollout.errors import LabelsUnavailable, RolloutError
from rollout.queries import Prometheus, version_queries
from rollout.state import CanaryState

if TYPE_CHECKING:
    from rollout.labels import Labelled

#: ``ground_truth(since, until)``: each version's labelled rows (:mod:`rollout.labels`).
GroundTruth = Callable[[datetime, datetime], "Labelled"]

__all__ = ["Delivery", "Options", "check_steps"]

EXIT = {"promoted": 0, "rolled_back": 1, "no_verdict": 2}


def check_steps(steps: Sequence[int]) -> list[int]:
    """Increasing shares, 1 to 100; 100 (promote) only last."""
    steps = list(steps)
    if not steps or any(not 1 <= s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise RolloutError(
            f"steps={','.join(map(str, steps))} is invalid: expected increasing percentages "
            "from 1 to 100, e.g. 10,25,50,100"
        )
    if steps == [100]:
        raise RolloutError("steps=100 is invalid: at least one step below 100 % is analysed")
    return steps


@dataclass(frozen=True)
class Options:
    """How a run steps and judges."""

    version: int
    steps: tuple[int, ...] = (10, 25, 50, 100)
    interval: float = 60.0
    max_wait: float = 600.0
    failure_limit: int = 1
    thresholds: Thresholds = Thresholds()
    selector: str = ""
    labels: str = ""
    """Where the labels are (``--labels``); empty: the accuracy check is skipped."""
    current: str = ""
    """The capture store the labels join (``--current``)."""

    @property
    def analysed(self) -> list[int]:
        """The steps analysed: those below 100 (100 is the promotion)."""
        return [s for s in self.steps if s < 100]


class Delivery:
    """One progressive rollout of ``options.version`` on the InferenceService of ``rollout``.

    Parameters
    ----------
    rollout : Rollout
        The moves, with their bounded waits for KServe.
    prometheus : Prometheus
        Where the per-version metrics are.
    options : Options
    check_version : callable
        ``check_version(name, version)`` raises unless the registry holds it (as for start).
    say : callable
        Receives one line per decision.
    ground_truth : callable, optional
        ``ground_truth(since, until)``: each version's labelled rows on an interval
        (:func:`rollout.labels.labelled_by_version`); None: the accuracy check is skipped.
    """

    def __init__(
        self,
        rollout: Rollout,
        prometheus: Prometheus,
        options: Options,
        *,
        check_version: Callable[[str, int], None],
        say: Callable[[str], None],
        ground_truth: GroundTruth | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.rollout, self.prometheus, self.options = rollout, prometheus, options
        self._check_version, self._say, self._sleep, self._now = check_version, say, sleep, now
        self._ground_truth = ground_truth
        self._failures: list[dict[str, Any]] = []

    def plan(self) -> dict[str, Any]:
        """What a run would do, from the object's state now; nothing is changed."""
        _, state = self.rollout.read()
        stable = self._stable_version(state)
        o = self.options
        lines = []
        for i, percent in enumerate(o.analysed):
            move = "start" if i == 0 and state.phase == "stable" else "shift"
            lines.append(
                f"step {i + 1}: {move} the canary v{o.version} to {percent} %, wait for KServe "
                f"to report it, wait {o.interval:g} s (up to {o.max_wait:g} s for traffic), "
                f"judge v{o.version} against v{stable}"
            )
        lines.append(
            f"each step: errors, latency and classes from Prometheus; accuracy from {o.labels} "
            f"joined to the captures in {o.current}"
            if o.labels
            else "each step: errors, latency and classes from Prometheus; accuracy skipped "
            "(no --labels)"
        )
        lines.append(f"then: promote v{o.version}; {o.failure_limit} failed check(s) roll back")
        for line in lines:
            self._say(f"plan: {line}")
        return {
            "version": o.version,
            "stable_version": stable,
            "steps": list(o.steps),
            "plan": lines,
            "queries": version_queries(str(o.version), math.ceil(o.interval), o.selector),
            "thresholds": asdict(o.thresholds),
        }

    def _stable_version(self, state: CanaryState) -> int:
        version = self.options.version
        if state.phase == "cleanup":
            raise RolloutError(
                "a rolled-back canary is still being cleaned up: run `python -m rollout "
                "rollback` first"
            )
        if state.phase == "canary" and state.canary_version != version:
            raise RolloutError(
                f"a canary of {state.canary_uri} is out: promote or roll it back first"
            )
        stable = state.stable_version
        if stable is None:
            raise RolloutError(
                f"the stable model {state.stable_uri} is not a pinned version: a run compares "
                "two registry versions"
            )
        if state.phase == "stable" and stable == version:
            raise RolloutError(f"version {version} already serves all the traffic")
        return stable

    def run(self) -> dict[str, Any]:
        """Step, judge, and end promoted, rolled back, or without a verdict; the report."""
        o = self.options
        _, state = self.rollout.read()
        stable = self._stable_version(state)
        report: dict[str, Any] = {
            "version": o.version,
            "stable_version": stable,
            "steps_planned": list(o.steps),
            "interval_seconds": o.interval,
            "max_wait_seconds": o.max_wait,
            "failure_limit": o.failure_limit,
            "thresholds": asdict(o.thresholds),
            "selector": o.selector,
            "labels": (
                {"labels": redact_text(o.labels), "current": redact_text(o.current)}
                if o.labels
                else None
            ),
            "started_at": round(self._now(), 3),
            "steps": [],
        }
        self._say(f"run: v{o.version} against stable v{stable}, steps {list(o.steps)}")
        outcome = "promoted"
        for i, percent in enumerate(o.analysed):
            state = self._move(state, percent, first=i == 0)
            verdict, attempts = self._judge(percent, str(o.version), str(stable))
            report["steps"].append({"percent": percent, "verdict": verdict, "attempts": attempts})
            if verdict == "pass":
                continue
            outcome = "rolled_back" if verdict == "fail" else "no_verdict"
            break
        if outcome == "promoted":
            self._say(f"decision: every step passed: promote v{o.version}")
            self.rollout.promote()
        elif outcome == "rolled_back":
            names = sorted({f["check"] for f in self._failures})
            self._say(f"decision: roll back v{o.version} (failed: {', '.join(names)})")
            self.rollout.rollback()
        else:
            self._say(
                f"decision: no verdict after {o.max_wait:g} s: v{o.version} is not promoted; "
                "it keeps its share (run again, or `python -m rollout rollback`)"
            )
        report |= {
            "outcome": outcome,
            "exit_status": EXIT[outcome],
            "failed_checks": self._failures,
            "finished_at": round(self._now(), 3),
        }
        return report

    def _move(self, state: CanaryState, percent: int, *, first: bool) -> CanaryState:
        o = self.options
        if first and state.phase == "stable":
            self._say(f"step {percent} %: start v{o.version} at {percent} %")
            self.rollout.start(o.version, percent, self._check_version)
        elif state.canary_percent != percent:
            self._say(f"step {percent} %: shift v{o.version} to {percent} %")
            self.rollout.shift(percent)
        else:
            self._say(f"step {percent} %: v{o.version} already has {percent} %")
        _, state = self.rollout.wait(
            lambda s: (
                s.canary_ready
                and (s.mode == "Standard" or s.reported_percent(s.canary_uri) == percent)
            ),
            f"KServe reports {percent} % on the canary, its revision ready",
        )
        self._say(f"step {percent} %: KServe reports the split; analysing for {o.interval:g} s")
        return state

    def _analyse(
        self, canary: str, stable: str, seconds: int, end: float
    ) -> tuple[list[Check], dict[str, Any]]:
        """The checks of the ``seconds`` before ``end``, and the attempt's record."""
        o = self.options
        canary_sample, canary_queries = self.prometheus.sample(canary, seconds, end, o.selector)
        stable_sample, stable_queries = self.prometheus.sample(stable, seconds, end, o.selector)
        checks = analyse(canary_sample, stable_sample, o.thresholds)
        if checks[0].name != "traffic":  # enough traffic: the labels can have their say
            checks.append(self._accuracy(canary, stable, end - seconds, end))
        attempt = {
            "window_seconds": seconds,
            "at": round(end, 3),
            "queries": {"canary": canary_queries, "stable": stable_queries},
            "checks": [c.as_dict() for c in checks],
        }
        return checks, attempt

    def _accuracy(self, canary: str, stable: str, since: float, until: float) -> Check:
        """The accuracy check on ``[since, until)``; skipped without labels."""
        t = self.options.thresholds
        if self._ground_truth is None:
            return accuracy_check(None, None, t, why="no labels given (--labels)")
        window = (datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(until, UTC))
        try:
            found = self._ground_truth(*window)
        except LabelsUnavailable as exc:
            return accuracy_check(None, None, t, why=f"labels unavailable: {exc}")
        check = accuracy_check(found.of(canary), found.of(stable), t)
        return replace(check, values={**check.values, "join": found.as_dict()})

    def _judge(self, percent: int, canary: str, stable: str) -> tuple[str, list[dict[str, Any]]]:
        """Analyse intervals at this share until a verdict: ``pass``, ``fail``, ``no_data``."""
        o = self.options
        attempts: list[dict[str, Any]] = []
        began = self._now()
        while True:
            started = self._now()
            self._sleep(o.interval)
            while True:
                end = self._now()
                seconds = max(1, math.ceil(end - started))
                checks, attempt = self._analyse(canary, stable, seconds, end)
                attempts.append(attempt)
                failed = [c for c in checks if c.verdict == "fail"]
                waiting = [c for c in checks if c.verdict == "no_data"]
                if failed or not waiting:
                    break
                attempt["verdict"] = "no_data"
                if end - began + o.interval > o.max_wait:
                    self._say(f"step {percent} %: {waiting[0].reason}; max_wait reached")
                    return "no_data", attempts
                self._say(f"step {percent} %: {waiting[0].reason}; waiting {o.interval:g} s more")
                self._sleep(o.interval)
            for check in checks:
                self._say(f"step {percent} %: {check.name} {check.verdict}: {check.reason}")
            if not failed:
                attempt["verdict"] = "pass"
                return "pass", attempts
            attempt["verdict"] = "fail"
            self._failures += [_failure(percent, c) for c in failed]
            if len(self._failures) >= o.failure_limit:
                return "fail", attempts
            self._say(
                f"step {percent} %: {len(self._failures)} of {o.failure_limit} failed checks; "
                "analysing this step again"
            )
            if self._now() - began > o.max_wait:
                return "no_data", attempts


def _failure(percent: int, check: Check) -> dict[str, Any]:
    return {"step": percent, "check": check.name, "reason": check.reason}
