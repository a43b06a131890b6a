"""The sales data set: a realistic synthetic one, or a CSV of your own, and its time split.

Each row is one item in one store on one day, in the raw record format clients send
(``transformer.schema``), plus the sold ``quantity`` and its class, the target::

    quantity <= 4        low
    5 <= quantity <= 10  medium
    quantity >= 11       high

(:data:`QUANTITY_THRESHOLDS`). The generator draws ``quantity ~ Poisson(exp(eta))``
where ``eta`` adds a category base level, store and item effects, the weekday, a
yearly season per category (beverages and frozen peak in summer, bakery at the
year's end), public holidays, promotions, the price elasticity of the category
applied to the discount, and noise.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from transformer.errors import InvalidRecord
from transformer.features import CATEGORIES
from transformer.schema import RAW_FIELDS, RAW_TYPES, validate_records

__all__ = [
    "CLASSES",
    "FIRST_DAY",
    "HOLIDAYS",
    "LAST_DAY",
    "LABEL",
    "QUANTITY_THRESHOLDS",
    "YEARLY_PRICE_RISE",
    "generate_sales",
    "load_sales_csv",
    "quantity_class",
    "split_by_time",
    "write_splits",
]

#: The target classes, in order of quantity.
CLASSES: Final[tuple[str, ...]] = ("low", "medium", "high")
#: Inclusive upper bounds of the quantity of ``low`` and of ``medium``; above is ``high``.
#: Chosen so that each class holds roughly a third of the generated rows.
QUANTITY_THRESHOLDS: Final[tuple[int, int]] = (4, 10)
#: Name of the target column.
LABEL: Final = "quantity_class"

#: Public holidays of the generated calendar (2024 and 2025).
HOLIDAYS: Final[tuple[str, ...]] = (
    "2024-01-01", "2024-03-29", "2024-04-01", "2024-05-01", "2024-05-09", "2024-05-20",
    "2024-10-03", "2024-12-25", "2024-12-26",
    "2025-01-01", "2025-04-18", "2025-04-21", "2025-05-01", "2025-05-29", "2025-06-09",
    "2025-10-03", "2025-12-25", "2025-12-26",
)  # fmt: skip

#: First and last day of the generated period; weeks (of promotions) count from the first.
FIRST_DAY: Final = np.datetime64("2024-01-01")
LAST_DAY: Final = np.datetime64("2025-12-31")
_STORES: Final = 20
_ITEMS: Final = 300
# Monday ... Sunday, added to log(quantity): weekends sell more.
_WEEKDAY_EFFECT: Final = np.array([-0.10, -0.12, -0.05, 0.0, 0.12, 0.30, 0.18])
_HOLIDAY_EFFECT: Final = 0.25
# Visibility of a promoted item, on top of what its lower price does.
_PROMOTION_LIFT: Final = 0.25
_PROMOTION_RATE: Final = 0.12  # share of (item, week) pairs on promotion
_PROMOTION_DISCOUNTS: Final = np.array([0.10, 0.15, 0.20, 0.25, 0.30, 0.40])
_PROMOTION_DISCOUNT_WEIGHTS: Final = np.array([0.15, 0.20, 0.25, 0.20, 0.15, 0.05])
_MARKDOWN_RATE: Final = 0.04  # unpromoted rows with a small clearance discount
_MARKDOWNS: Final = np.array([0.05, 0.10])
#: Prices rise by this share of their 2024 level each year.
YEARLY_PRICE_RISE: Final = 0.03
_NOISE: Final = 0.25


@dataclass(frozen=True)
class _Category:
    share: float  # of the catalogue
    median_price: float
    base: float  # log(quantity) of an average item on an average day
    elasticity: float  # d log(quantity) / d log(price)
    season_amplitude: float
    season_peak: int  # day of the year


_CATEGORY_PROFILES: Final = {
    "bakery": _Category(0.12, 2.5, 1.85, -1.2, 0.10, 355),
    "beverages": _Category(0.16, 2.0, 1.95, -1.6, 0.35, 200),
    "dairy": _Category(0.14, 1.8, 2.05, -1.0, 0.05, 30),
    "frozen": _Category(0.10, 4.5, 1.55, -1.5, 0.30, 205),
    "household": _Category(0.12, 6.0, 1.20, -0.8, 0.05, 100),
    "meat": _Category(0.10, 9.0, 1.45, -1.3, 0.15, 180),
    "produce": _Category(0.14, 1.5, 2.15, -1.1, 0.20, 190),
    "snacks": _Category(0.12, 2.2, 1.80, -1.8, 0.10, 350),
}
# Bakery's Christmas rush, a bump around 20 December.
_YEAR_END_BAKERY: Final = (0.5, 354, 8.0)  # height, day of the year, width in days


def generate_sales(rows: int, seed: int) -> pd.DataFrame:
    """Generate a synthetic daily sales data set, the same for the same arguments.

    Parameters
    ----------
    rows : int
        Number of distinct (store, item, day) rows to draw from two years
        (2024-01-01 to 2025-12-31) of 20 stores and 300 items.
    seed : int
        Seed of the NumPy random generator.

    Returns
    -------
    sales : DataFrame
        The raw record columns (``date`` as YYYY-MM-DD, bools as bool), ``quantity``
        and ``quantity_class``, sorted by date, store and item.

    Examples
    --------
    >>> sales = generate_sales(rows=5, seed=0)
    >>> list(sales.columns)[-2:], len(sales)
    (['quantity', 'quantity_class'], 5)
    """
    if rows < 1:
        raise ValueError(f"rows={rows!r} is invalid: expected at least 1")
    rng = np.random.default_rng(seed)
    n_days = int((LAST_DAY - FIRST_DAY).astype(np.int64)) + 1
    population = n_days * _STORES * _ITEMS
    if rows > population:
        raise ValueError(f"rows={rows!r} is invalid: expected at most {population}")

    # The catalogue and the stores, fixed for the whole period.
    profiles = [_CATEGORY_PROFILES[name] for name in CATEGORIES]
    shares = np.array([p.share for p in profiles])
    item_numbers = np.sort(rng.choice(np.arange(1, 10_000), size=_ITEMS, replace=False))
    item_category = rng.choice(len(CATEGORIES), size=_ITEMS, p=shares / shares.sum())
    median_price = np.array([p.median_price for p in profiles])[item_category]
    reference_price = np.maximum(np.round(median_price * rng.lognormal(0.0, 0.35, _ITEMS), 2), 0.29)
    # Centred, so that the class shares hardly depend on the seed.
    item_popularity = _centred(rng.normal(0.0, 0.5, _ITEMS))
    store_effect = _centred(rng.normal(0.0, 0.3, _STORES))
    store_price_level = rng.normal(0.0, 0.04, _STORES)
    n_weeks = n_days // 7 + 1
    promoted_week = rng.random((_ITEMS, n_weeks)) < _PROMOTION_RATE
    week_discount = rng.choice(
        _PROMOTION_DISCOUNTS, size=(_ITEMS, n_weeks), p=_PROMOTION_DISCOUNT_WEIGHTS
    )

    # Distinct (day, store, item) rows.
    cell = rng.choice(population, size=rows, replace=False)
    day_offset, rest = np.divmod(cell, _STORES * _ITEMS)
    store, item = np.divmod(rest, _ITEMS)
    days = FIRST_DAY + day_offset.astype("timedelta64[D]")
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    week = day_offset // 7
    category = item_category[item]

    on_promotion = promoted_week[item, week]
    markdown = ~on_promotion & (rng.random(rows) < _MARKDOWN_RATE)
    discount = np.where(on_promotion, week_discount[item, week], 0.0)
    discount = np.where(markdown, rng.choice(_MARKDOWNS, size=rows), discount)
    price_rise = 1.0 + YEARLY_PRICE_RISE * (year - 2024)
    unit_price = np.round(reference_price[item] * np.exp(store_price_level[store]) * price_rise, 2)
    is_holiday = np.isin(days, np.array(HOLIDAYS, dtype="datetime64[D]"))

    eta = (
        np.array([p.base for p in profiles])[category]
        + store_effect[store]
        + item_popularity[item]
        + _WEEKDAY_EFFECT[weekday]
        + _season(category, day_of_year, profiles)
        + _HOLIDAY_EFFECT * is_holiday
        + _PROMOTION_LIFT * on_promotion
        # Elasticity acts on the price paid against the item's reference price.
        + np.array([p.elasticity for p in profiles])[category]
        * np.log(unit_price * (1.0 - discount) / reference_price[item])
        + rng.normal(0.0, _NOISE, rows)
    )
    quantity = rng.poisson(np.exp(eta))

    sales = pd.DataFrame(
        {
            "date": np.datetime_as_string(days, unit="D"),
            "store_id": [f"S{n:03d}" for n in store + 1],
            "item_id": [f"I{n:04d}" for n in item_numbers[item]],
            "category": np.array(CATEGORIES)[category],
            "unit_price": unit_price,
            "discount_pct": discount,
            "on_promotion": on_promotion,
            "is_holiday": is_holiday,
            "quantity": quantity.astype(np.int64),
            LABEL: quantity_class(quantity),
        }
    )
    return sales.sort_values(["date", "store_id", "item_id"], ignore_index=True)


def _centred(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(values - values.mean(), dtype=np.float64)


def _season(
    category: npt.NDArray[np.int64],
    day_of_year: npt.NDArray[np.int64],
    profiles: Sequence[_Category],
) -> npt.NDArray[np.float64]:
    amplitude = np.array([p.season_amplitude for p in profiles])[category]
    peak = np.array([p.season_peak for p in profiles])[category]
    season = amplitude * np.cos(2.0 * np.pi * (day_of_year - peak) / 365.25)
    height, centre, width = _YEAR_END_BAKERY
    bakery = category == CATEGORIES.index("bakery")
    bump = height * np.exp(-0.5 * ((day_of_year - centre) / width) ** 2)
    return np.asarray(season + np.where(bakery, bump, 0.0), dtype=np.float64)


def quantity_class(quantity: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """Map sold quantities to their class by :data:`QUANTITY_THRESHOLDS`.

    Examples
    --------
    >>> quantity_class([0, 4, 5, 10, 11]).tolist()
    ['low', 'low', 'medium', 'medium', 'high']
    """
    low_max, medium_max = QUANTITY_THRESHOLDS
    # right=True puts a quantity equal to a bound in the lower class.
    codes = np.digitize(np.asarray(quantity), [low_max, medium_max], right=True)
    return np.asarray(np.asarray(CLASSES)[codes], dtype=np.str_)


def split_by_time(df: pd.DataFrame, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split sales into earlier days for training and the latest days for testing.

    A day is never split, so the test share is close to, not exactly, ``test_fraction``.

    Parameters
    ----------
    df : DataFrame
        Sales with a ``date`` column as YYYY-MM-DD.
    test_fraction : float
        Share of rows to hold out, between 0 and 1.

    Returns
    -------
    train, test : DataFrame
        Rows before the cut-off day, and from it on, each with a fresh index.

    Raises
    ------
    ValueError
        When ``test_fraction`` is out of range or either split would be empty.

    Examples
    --------
    >>> sales = pd.DataFrame({"date": ["2024-01-02", "2024-01-01", "2024-01-03", "2024-01-03"]})
    >>> train, test = split_by_time(sales, test_fraction=0.5)
    >>> train["date"].tolist(), test["date"].tolist()
    (['2024-01-01', '2024-01-02'], ['2024-01-03', '2024-01-03'])
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} is invalid: expected between 0 and 1")
    ordered = df.sort_values("date", kind="stable", ignore_index=True)
    cutoff = ordered["date"].iloc[int(len(ordered) * (1.0 - test_fraction))]
    is_test = ordered["date"] >= cutoff
    train = ordered.loc[~is_test].reset_index(drop=True)
    test = ordered.loc[is_test].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(
            f"cannot split {len(df)} row(s) over {ordered['date'].nunique()} day(s) by time: "
            "both splits need at least one day"
        )
    return train, test


# Text fields are read as text (S012 stays S012); flags are parsed by _booleans.
_CSV_DTYPES: Final[Mapping[Hashable, type[str]]] = {
    **{name: str for name, kind in RAW_TYPES.items() if kind is str},
    LABEL: str,
}
_FLAGS: Final = tuple(name for name, kind in RAW_TYPES.items() if kind is bool)
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


def load_sales_csv(path: Path) -> pd.DataFrame:
    """Read and check a sales CSV of your own.

    Parameters
    ----------
    path : Path
        A CSV with the raw record columns (``transformer.schema.RAW_FIELDS``) and
        ``quantity``, ``quantity_class`` or both. Booleans may be written as
        true/false, 1/0 or yes/no.

    Returns
    -------
    sales : DataFrame
        The raw record columns, ``quantity`` when given, and ``quantity_class``
        (derived from ``quantity`` by :data:`QUANTITY_THRESHOLDS` when absent).

    Raises
    ------
    ValueError
        Naming the missing columns, or the row, field and value that is invalid.
    OSError
        When the file cannot be read.
    """
    try:
        df = pd.read_csv(path, dtype=_CSV_DTYPES, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV: {exc}") from exc
    missing = [name for name in RAW_FIELDS if name not in df.columns]
    if "quantity" not in df.columns and LABEL not in df.columns:
        missing.append(f"quantity or {LABEL}")
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; a sales CSV has "
            f"{', '.join(RAW_FIELDS)} and quantity or {LABEL}"
        )
    if df.empty:
        raise ValueError(f"{path}: no rows")
    for name in _FLAGS:
        df[name] = _booleans(df[name], name, path)
    try:
        validate_records(df[list(RAW_FIELDS)].to_dict("records"))
    except InvalidRecord as exc:
        raise ValueError(f"{path}: {exc}") from exc

    columns = list(RAW_FIELDS)
    if "quantity" in df.columns:
        quantity = pd.to_numeric(df["quantity"], errors="coerce")
        bad = quantity.isna() | (quantity < 0) | (quantity % 1 != 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: row[{row}].quantity={df['quantity'].iloc[row]!r} is invalid: "
                "expected a whole number of at least 0"
            )
        df["quantity"] = quantity.astype(np.int64)
        columns.append("quantity")
        if LABEL not in df.columns:
            df[LABEL] = quantity_class(df["quantity"].to_numpy())
    unknown = ~df[LABEL].isin(CLASSES)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ValueError(
            f"{path}: row[{row}].{LABEL}={df[LABEL].iloc[row]!r} is invalid: "
            f"expected one of {', '.join(CLASSES)}"
        )
    return df[[*columns, LABEL]]


def _booleans(column: pd.Series, name: str, path: Path) -> pd.Series:
    if column.dtype == bool:
        return column
    text = column.astype(str).str.strip().str.lower()
    known = text.isin(_TRUE | _FALSE)
    if not known.all():
        row = int(np.flatnonzero(~known.to_numpy())[0])
        raise ValueError(
            f"{path}: row[{row}].{name}={column.iloc[row]!r} is invalid: "
            "expected true or false (or 1/0, yes/no)"
        )
    return text.isin(_TRUE)


def write_splits(train: pd.DataFrame, test: pd.DataFrame, data_dir: Path) -> tuple[Path, Path]:
    """Write the splits as ``data_dir/train.csv`` and ``data_dir/test.csv``.

    Returns
    -------
    train_path, test_path : Path
        The files written.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    train_path, test_path = data_dir / "train.csv", data_dir / "test.csv"
    train.to_csv(train_path, index=False)
    test.to_csv(test_path, index=False)
    return train_path, test_path
