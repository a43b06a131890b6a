"""The chart's Prometheus rules and Grafana dashboard, read for the tests that check them.

The rules file and the dashboard are data the chart ships; the deploy tests check them with
promtool and against the rendered objects, the integration test runs every query in them
against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
CHART_FILES: Final = ROOT / "helm" / "sales-quantity-classifier" / "files"
RULES_FILE: Final = CHART_FILES / "prometheus-rules.yaml"
DASHBOARD_FILE: Final = CHART_FILES / "grafana-dashboard.json"
RULES_TEST_FILE: Final = Path(__file__).parent / "prometheus" / "rules_test.yaml"

#: Alerts whose input series cannot exist on this machine, and why.
NO_INPUT_HERE: Final = {
    "SalesQuantityMonitoringJobNotSucceeded": (
        "kube_cronjob_* come from kube-state-metrics, which reports a Kubernetes API server's "
        "CronJobs and Jobs; no CronJob controller runs here, so only promtool's synthetic "
        "series (tests/deploy/prometheus/rules_test.yaml) drive it"
    ),
}

#: What the dashboard's variables stand for when a panel's query is sent to Prometheus itself.
DASHBOARD_VARIABLES: Final = {"$__rate_interval": "5m", "$namespace": ".*"}

_COMPARISON: Final = re.compile(r"(==|!=|>=|<=|>|<)(\s*bool)?")
_NUMBER: Final = re.compile(r"\s*[-+]?([0-9]*\.)?[0-9]+([eE][-+]?[0-9]+)?\s*")


@dataclass(frozen=True)
class Rule:
    """One rule of the rules file: a recording rule (``record``) or an alert (``alert``)."""

    name: str
    kind: str  # "record" or "alert"
    expr: str
    body: dict[str, Any]


def rule_groups() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text())
    return loaded


def rules() -> list[Rule]:
    """Every rule, in the file's order."""
    found = []
    for group in rule_groups()["groups"]:
        for body in group["rules"]:
            kind = "record" if "record" in body else "alert"
            found.append(Rule(body[kind], kind, body["expr"].strip(), body))
    return found


def alerts() -> list[Rule]:
    return [r for r in rules() if r.kind == "alert"]


def recording_rules() -> list[Rule]:
    return [r for r in rules() if r.kind == "record"]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every panel target, variables as they stand."""
    found = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            found.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return found


def with_variables(query: str) -> str:
    """``query`` as Grafana would send it, its variables replaced (DASHBOARD_VARIABLES)."""
    for name, value in DASHBOARD_VARIABLES.items():
        query = query.replace(name, value)
    assert "$" not in query.replace("${1}", ""), f"a dashboard variable not replaced in {query}"
    return query


def signal_of(expr: str) -> str:
    """An alert's expression without its threshold: ``SIGNAL OP NUMBER`` -> ``SIGNAL``.

    The comparison must be the last one at the top level (outside brackets and strings) and
    compare with a number, as every alert of this project's does; anything else is refused,
    so an alert written otherwise is noticed rather than half checked.

    Examples
    --------
    >>> signal_of('max by (a) (m{x=">"}) == 1')
    'max by (a) (m{x=">"})'
    >>> signal_of("rate(x[5m]) > bool 0.25")
    'rate(x[5m])'
    """
    depth, quote, last = 0, "", None
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            match = _COMPARISON.match(expr, i)
            if match:
                last = match
                i = match.end()
                continue
        i += 1
    if last is None or not _NUMBER.fullmatch(expr[last.end() :]):
        raise ValueError(f"not of the form SIGNAL OP NUMBER: {expr!r}")
    return expr[: last.start()].strip()
