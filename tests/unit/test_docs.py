"""The user guide against the code: its settings reference and its list of metrics.

``docs/configuration.md``'s reference is made at build time by the MkDocs hook
``docs/hooks/settings_reference.py``; these tests check that the hook knows every settings
class and that every setting has what the reference prints. ``docs/monitoring.md`` lists
every metric the servers and the jobs export, once; these tests hold that list to the
metrics the code declares.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGES = ("common", "predictor", "transformer", "monitoring", "training", "rollout")


def hook() -> ModuleType:
    """The MkDocs hook, loaded from its file as MkDocs loads it."""
    name = "docs_hooks_settings_reference"
    if name not in sys.modules:
        path = DOCS / "hooks" / "settings_reference.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def project_settings_classes() -> set[type[BaseSettings]]:
    """Every public pydantic-settings class in a ``*settings`` module of the project."""
    found: set[type[BaseSettings]] = set()
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, prefix=f"{package}."):
            if not info.name.rsplit(".", 1)[-1].endswith("settings"):
                continue
            module = importlib.import_module(info.name)
            found |= {
                value
                for name, value in vars(module).items()
                if isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            }
    return found


def test_every_settings_class_of_the_project_is_in_the_configuration_reference() -> None:
    listed = {section.settings_class() for section in hook().SECTIONS}
    missing = project_settings_classes() - listed
    assert not missing, f"add these to SECTIONS in docs/hooks/settings_reference.py: {missing}"


def test_every_setting_has_a_docstring_for_the_reference_to_print() -> None:
    undocumented = [
        f"{cls.__name__}.{name}"
        for cls in (section.settings_class() for section in hook().SECTIONS)
        for name, field in cls.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not undocumented


def test_the_reference_names_every_setting_with_its_flag_and_variable() -> None:
    text = hook().reference()
    for section in hook().SECTIONS:
        cls = section.settings_class()
        prefix = cls.model_config.get("env_prefix") or ""
        for name in cls.model_fields:
            assert f"`--{name}`" in text
            if prefix:
                assert f"`{prefix}{name.upper()}`" in text


def test_the_reference_lists_a_setting_inherited_unchanged_only_where_it_is_declared() -> None:
    text = hook().reference()
    assert text.count('id="server-http_port"') == 1
    assert 'id="predictor-http_port"' not in text
    assert "`PREDICTOR_HTTP_PORT`, `TRANSFORMER_HTTP_PORT`" in text
    assert "It also takes every setting of [both servers](#server)." in text
    assert 'id="predictor-model_name"' in text  # declared again, with its own docstring


def test_the_configuration_page_marks_where_the_reference_goes() -> None:
    page = (DOCS / hook().PAGE).read_text(encoding="utf-8")
    assert page.count(hook().MARKER) == page.count(hook().END) == 1
    assert page.index(hook().MARKER) < page.index(hook().END)


def documented_metrics() -> dict[str, set[str]]:
    """The metric names of each table under ``## Metrics`` in docs/monitoring.md, by heading."""
    page = (DOCS / "monitoring.md").read_text(encoding="utf-8")
    section = page.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, set[str]] = {}
    heading = ""
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line[4:]
            tables[heading] = set()
        elif line.startswith("| `"):
            first_cell = line.split("|")[1]
            tables[heading] |= set(re.findall(r"`([a-z][a-z0-9_]*)`", first_cell))
    return tables


def exported(registry: CollectorRegistry) -> set[str]:
    """Metric names as ``/metrics`` shows them (a counter with ``_total``)."""
    return {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in registry.collect()
        if not family.name.startswith(("process_", "python_"))
    }


def test_the_monitoring_page_lists_every_metric_the_servers_export() -> None:
    importlib.import_module("predictor.model")
    importlib.import_module("transformer.model")
    assert documented_metrics()["The servers' `/metrics`"] == exported(REGISTRY)


def test_the_monitoring_page_lists_every_metric_the_jobs_export() -> None:
    from monitoring.publish import drift_metrics, performance_metrics
    from monitoring.reports import (
        DriftReport,
        DriftRule,
        DriftVerdict,
        PerformanceReport,
        PerformanceRule,
        PerformanceVerdict,
        ScanSummary,
    )
    from monitoring.windows import TimeWindow

    scan = ScanSummary("x", 0, 0, 0, (), {})
    common: dict[str, Any] = {
        "generated_at": datetime.now(UTC),
        "model_name": "m",
        "model_uri": "models:/m/1",
        "model_version": "1",
        "window": TimeWindow(None, None),
        "current": scan,
    }
    drift = DriftReport(
        **common,
        reference=scan,
        rule=DriftRule(0.05, 0.03, 0.999, 0.045, 0.4, (), 100),
        verdict=DriftVerdict("insufficient_data", False, (), (), (), (), (), 0, 0.0, 0, ()),
        features=(),
    )
    performance = PerformanceReport(
        **common,
        rows_predictions=0,
        rows_joined=0,
        labels=scan,
        training_metrics={},
        rule=PerformanceRule("1h", 3, 0.05, 1000, 0.95, 100),
        windows=(),
        verdict=PerformanceVerdict("insufficient_data", False, 0),
    )
    documented = documented_metrics()
    assert documented["The drift job's"] == exported(drift_metrics(drift))
    assert documented["The performance job's"] == exported(performance_metrics(performance))


def test_each_metric_is_described_once() -> None:
    counts = Counter(name for names in documented_metrics().values() for name in names)
    assert [name for name, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_a_list_on_a_docs_page_follows_a_blank_line(page: str) -> None:
    """Python-Markdown (MkDocs) reads a list right after a paragraph line as more paragraph."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    fenced = False
    for before, line in zip(lines, lines[1:], strict=False):
        fenced ^= before.startswith("```")
        if fenced or before.strip() == "" or before.lstrip().startswith(("- ", "|")):
            continue
        if re.match(r"(- |\d+\. )", line) and not before.startswith((" ", "#")):
            pytest.fail(f"{page}: a list starts right after {before!r}")
