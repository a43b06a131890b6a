"""What the monitoring jobs know about the model's features, derived from the contract.

Each feature is computed from one or more fields of the raw record
(:data:`SOURCES`, checked against :func:`transformer.features.compute_features` by
``tests/unit/test_drift_features.py``). That decides how a feature takes part in the
drift verdict:

- Features computed from the calendar alone (:data:`CALENDAR_FIELDS`: the date and
  the holiday flag) are ``seasonal``: a window of March against a reference of two
  whole years always differs in its months, weekdays and holidays, and that is the
  season the model was trained on, not drift. They are tested and reported, and do
  not vote.
- The other features vote by :data:`GROUPS`: the features that share a raw field
  form one group and cast one vote (``unit_price``, ``discount_pct`` and
  ``effective_price``, computed from both, are one group).

Integer features are codes (store, item, category, weekday, month, flags): they are
compared as categories and shown by name (:func:`label`). Floating-point features are
compared as distributions, or as categories when the reference holds at most
:data:`MAX_LEVELS` distinct values (a discount of a few levels).

Examples
--------
>>> GROUP_OF["effective_price"], GROUP_OF["unit_price"], GROUP_OF["month"]
('unit_price+discount_pct', 'unit_price+discount_pct', 'date')
>>> ROLES["month"], ROLES["item_index"]
('seasonal', 'voting')
>>> label("category_code", 6.0), label("store_index", 12.0), label("month", 3.0)
('produce', 'S012', 'Mar')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from transformer.features import CATEGORIES, FEATURE_NAMES, FEATURES, compute_features
from transformer.schema import RAW_FIELDS

if TYPE_CHECKING:  # only raw records need pandas; stored features are read without it
    import pandas as pd

__all__ = [
    "CALENDAR_FIELDS",
    "FEATURE_NAMES",
    "GROUPS",
    "GROUP_OF",
    "KINDS",
    "MAX_LEVELS",
    "RAW_FIELDS",
    "ROLES",
    "SOURCES",
    "Group",
    "Kind",
    "Role",
    "features_from_raw",
    "label",
    "single_source",
]

Kind = Literal["numeric", "categorical"]
#: ``voting``: the feature's group votes on the dataset's drift; ``seasonal``: a
#: function of the calendar, reported and not voting.
Role = Literal["voting", "seasonal"]

#: Each feature's kind, in contract order.
KINDS: Final[dict[str, Kind]] = {
    f.name: ("numeric" if f.datatype.startswith("FP") else "categorical") for f in FEATURES
}

#: The raw fields each feature is computed from (``compute_features``), in contract order.
SOURCES: Final[dict[str, tuple[str, ...]]] = {
    "store_index": ("store_id",),
    "item_index": ("item_id",),
    "category_code": ("category",),
    "day_of_week": ("date",),
    "month": ("date",),
    "is_weekend": ("date",),
    "day_of_year_sin": ("date",),
    "day_of_year_cos": ("date",),
    "unit_price": ("unit_price",),
    "discount_pct": ("discount_pct",),
    "effective_price": ("unit_price", "discount_pct"),
    "on_promotion": ("on_promotion",),
    "is_holiday": ("is_holiday",),
}

#: Raw fields that are the calendar: what follows from them alone is the season.
CALENDAR_FIELDS: Final = frozenset({"date", "is_holiday"})

#: A floating-point feature with at most this many distinct reference values is
#: compared as categories (chi-square and total variation), not by Kolmogorov-Smirnov,
#: which is very conservative on a few levels.
MAX_LEVELS: Final = 20


@dataclass(frozen=True)
class Group:
    """Features that share raw fields: one vote (or none, when seasonal)."""

    name: str
    """The raw fields joined by ``+``, e.g. ``unit_price+discount_pct``."""
    fields: tuple[str, ...]
    features: tuple[str, ...]

    @property
    def role(self) -> Role:
        return "seasonal" if set(self.fields) <= CALENDAR_FIELDS else "voting"


def _groups(sources: dict[str, tuple[str, ...]]) -> tuple[Group, ...]:
    """Features joined when they share a raw field (transitively), in contract order."""
    merged: list[tuple[list[str], list[str]]] = []  # (fields, features)
    for feature, fields in sources.items():
        touching = [g for g in merged if set(g[0]) & set(fields)]
        fields_of = [f for g in touching for f in g[0]] + [f for f in fields]
        features_of = [f for g in touching for f in g[1]] + [feature]
        for g in touching:
            merged.remove(g)
        merged.append((list(dict.fromkeys(fields_of)), features_of))
    order = {name: i for i, name in enumerate(sources)}
    merged.sort(key=lambda g: min(order[f] for f in g[1]))
    return tuple(
        Group(
            "+".join(fields),
            tuple(fields),
            tuple(sorted(features, key=order.__getitem__)),
        )
        for fields, features in merged
    )


#: The groups, in contract order of their first feature.
GROUPS: Final[tuple[Group, ...]] = _groups(SOURCES)
#: Each feature's group name.
GROUP_OF: Final[dict[str, str]] = {f: g.name for g in GROUPS for f in g.features}
#: Each feature's role, its group's.
ROLES: Final[dict[str, Role]] = {f: g.role for g in GROUPS for f in g.features}


def single_source(name: str) -> bool:
    """Whether the feature is computed from one raw field alone (not a mix of several)."""
    return len(SOURCES[name]) == 1


_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_FLAGS: Final = ("no", "yes")


def _named(names: tuple[str, ...], first: int = 0) -> Callable[[int], str | None]:
    def name(code: int) -> str | None:
        return names[code - first] if first <= code < first + len(names) else None

    return name


#: How codes read: ids as the client sends them, categories, weekdays and months by name.
_CODE_NAMES: Final[dict[str, Callable[[int], str | None]]] = {
    "store_index": lambda code: f"S{code:03d}" if 0 <= code <= 999 else None,
    "item_index": lambda code: f"I{code:04d}" if 0 <= code <= 9999 else None,
    "category_code": _named(CATEGORIES),
    "day_of_week": _named(_WEEKDAYS),
    "month": _named(_MONTHS, first=1),
    "is_weekend": _named(_FLAGS),
    "on_promotion": _named(_FLAGS),
    "is_holiday": _named(_FLAGS),
}


def label(name: str, value: float) -> str:
    """How a value of feature ``name`` reads: a code by its name, a number in short.

    A code outside the names it can have (a category the model does not know) reads
    as its number.

    Examples
    --------
    >>> label("item_index", 457.0), label("day_of_week", 5.0), label("category_code", 42.0)
    ('I0457', 'Sat', '42')
    >>> label("discount_pct", 0.1), label("unit_price", 3.4999999)
    ('0.1', '3.5')
    """
    if float(value).is_integer():
        name_of = _CODE_NAMES.get(name)
        named = name_of(int(value)) if name_of else None
        return named if named is not None else str(int(value))
    return f"{value:.6g}"


def features_from_raw(frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """Features of raw records (the transformer's own computation), as float arrays."""
    records = {name: frame[name].tolist() for name in RAW_FIELDS}
    records["date"] = [str(d)[:10] for d in records["date"]]
    computed: dict[str, Any] = compute_features(records)
    return {name: np.asarray(computed[name], dtype=np.float64) for name in FEATURE_NAMES}
