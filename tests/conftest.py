"""The tiers are the directories: every test under ``tests/<tier>/`` carries the marker ``<tier>``.

So ``-m "not integration and not images and not deploy"`` selects exactly ``tests/unit`` (and
the doctests of the product), and a new test in ``tests/integration`` cannot land in the fast
tier by forgetting its ``pytestmark``. Markers beyond the tier (``slow``, or ``deploy`` on an
integration test) are still set by the test module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: The directories under tests/ whose name is the marker of every test in them.
TIERS = ("deploy", "images", "integration")

TESTS = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        tier = item.path.relative_to(TESTS).parts[0]
        if tier in TIERS:
            item.add_marker(tier)
