"""The moves on one InferenceService: read its state, wait for readiness, send the patch.

Every move first checks it fits the state (and refuses before sending anything if not),
then waits, bounded, for what it relies on:

- ``start``: the spec's revision is ready and rolled out (nothing else under way);
- ``shift`` and ``promote``: the canary's revision is ready (before that, KServe routes its
  share to the stable revision, and a promotion would route everything to a revision that
  cannot serve);
- ``rollback`` does not wait to move traffic away from the canary; it waits for the stable
  model's new revision before it removes ``canaryTrafficPercent``.

Python callers (``python -m rollout run``) use :class:`Rollout` and
:class:`~rollout.state.CanaryState` the same way the CLI does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from rollout import plan
from rollout.errors import NotReady
from rollout.plan import Patch
from rollout.state import CanaryState, Obj, read_state, registered_model

__all__ = ["Cluster", "Rollout"]


class Cluster(Protocol):
    """What a rollout needs of the API server (:class:`rollout.kube.InferenceServices`)."""

    def get(self, name: str) -> Obj: ...

    def patch(self, name: str, patch: Patch, *, dry_run: bool = False) -> Obj: ...

    def revision_uri(self, revision: str) -> str | None: ...


def _progress(state: CanaryState) -> str:
    return (
        f"latest created revision {state.latest_created} ({state.latest_created_uri}), "
        f"latest ready {state.latest_ready}, rolled out {state.stable_revision}"
    )


class Rollout:
    """Moves on InferenceService ``name``.

    Parameters
    ----------
    cluster : Cluster
        Reads and patches the object, looks revisions up.
    name : str
        The InferenceService.
    timeout : float
        How long a move waits for readiness, in seconds, before it gives up (NotReady).
    poll : float, default=1.0
        Seconds between two reads while waiting.
    dry_run : bool, default=False
        Have the server check each patch without storing it, and wait for nothing.
    report : callable, default=ignore
        Receives one line per thing worth saying (waiting, dry-run notes).
    sent : callable, default=ignore
        Receives each patch as it is sent.
    """

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        *,
        timeout: float,
        poll: float = 1.0,
        dry_run: bool = False,
        report: Callable[[str], None] = lambda line: None,
        sent: Callable[[Patch], None] = lambda patch: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster, self.name = cluster, name
        self.timeout, self.poll, self.dry_run = timeout, poll, dry_run
        self._report, self._sent, self._sleep, self._clock = report, sent, sleep, clock

    def read(self) -> tuple[Obj, CanaryState]:
        """The stored object and its state."""
        isvc = self.cluster.get(self.name)
        return isvc, read_state(isvc, self.cluster.revision_uri)

    def wait(self, ready: Callable[[CanaryState], bool], what: str) -> tuple[Obj, CanaryState]:
        """Read until ``ready(state)``; :class:`NotReady` after ``timeout`` seconds."""
        deadline = self._clock() + self.timeout
        isvc, state = self.read()
        told = False
        while not ready(state):
            if self.dry_run:
                self._report(f"dry run: {what} is not true yet; a real run would wait for it")
                return isvc, state
            if self._clock() >= deadline:
                raise NotReady(f"{what}: still not after {self.timeout:g} s ({_progress(state)})")
            if not told:
                self._report(f"waiting until {what} (up to {self.timeout:g} s)")
                told = True
            self._sleep(self.poll)
            isvc, state = self.read()
        return isvc, state

    def _send(self, patch: Patch) -> CanaryState:
        self._sent(patch)
        patched = self.cluster.patch(self.name, patch, dry_run=self.dry_run)
        return read_state(patched, self.cluster.revision_uri)

    def start(
        self, version: int, percent: int, check_version: Callable[[str, int], None]
    ) -> CanaryState:
        """Serve registry version ``version`` to ``percent`` % of the traffic.

        ``check_version(name, version)`` raises unless the registry holds that version.
        """
        isvc, state = self.read()
        plan.start(isvc, state, version, percent)  # refuse what does not fit, before waiting
        check_version(registered_model(state.spec_uri), version)
        isvc, state = self.wait(
            lambda s: s.settled or s.phase != "stable",
            "the stable revision is ready and has all the traffic",
        )
        return self._send(plan.start(isvc, state, version, percent))

    def shift(self, percent: int) -> CanaryState:
        """Give the canary ``percent`` % of the traffic, once its revision is ready."""
        isvc, state = self.read()
        plan.shift(isvc, state, percent)
        isvc, state = self._canary_ready()
        return self._send(plan.shift(isvc, state, percent))

    def promote(self) -> CanaryState:
        """Give the canary's pinned version all the traffic, once its revision is ready."""
        isvc, state = self.read()
        plan.promote(isvc, state)
        isvc, state = self._canary_ready()
        return self._send(plan.promote(isvc, state))

    def rollback(self) -> CanaryState:
        """All traffic back to the stable model, then a clean spec."""
        isvc, state = self.read()
        if state.phase == "canary":
            state = self._send(plan.rollback(isvc, state))
            if state.mode == "Standard":
                return state
            if self.dry_run:
                self._report(
                    "dry run: once the stable model's new revision is ready, rollback then "
                    "removes canaryTrafficPercent"
                )
                return state
        elif state.phase != "cleanup":
            plan.rollback(isvc, state)  # raises: nothing to roll back
        try:
            isvc, state = self.wait(
                lambda s: s.spec_ready or s.phase != "cleanup",
                "the stable model's new revision is ready",
            )
        except NotReady as exc:
            raise NotReady(
                f"{exc}. All traffic stays on the rolled-out revision "
                f"{state.stable_revision} and canaryTrafficPercent=0 stays in the spec until "
                "then: run rollback again to finish"
            ) from exc
        return self._send(plan.finish_rollback(isvc, state))

    def _canary_ready(self) -> tuple[Obj, CanaryState]:
        try:
            return self.wait(
                lambda s: s.canary_ready or s.phase != "canary", "the canary's revision is ready"
            )
        except NotReady as exc:
            raise NotReady(
                f"{exc}. KServe keeps the canary's share on the stable revision; nothing was "
                "sent. Roll back, or wait longer (--timeout)"
            ) from exc
