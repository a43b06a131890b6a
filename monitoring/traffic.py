"""Served traffic for the drift evaluation, made from the project's own data generator.

:func:`training.dataset.generate_sales` draws distinct (day, store, item) cells of one
world, fixed by its seed: each item's category and price, each store's price level,
the promotions of each (item, week), a yearly price rise, the holidays. Served traffic
is requests, and a day has only 20 x 300 cells, asked for again and again. Drawing
windows again and again from one finite sample of generated rows would carry that
sample's chance composition (which items it happened to hold) into every window: at
100,000 rows a day, resampled from the ~1,400 generated rows of that day,
``item_index`` would drift from the duplication alone.

So :func:`learn_world` reads the world off one large generated sample, and checks that
every row of it is what the world gives that row's cell; a window's rows are cells
drawn uniformly, with replacement, from the window's days (:meth:`World.cells`), with
the raw fields the generator gives each cell (:meth:`World.records`; markdowns, a draw
per row in the generator, are drawn anew). :func:`make_shifts` moves raw records away
from the reference before their features are computed.

The ``training`` package is imported here: this module is for the evaluation, which
runs where the project is installed for development, not in the monitoring image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.dataset import FIRST_DAY, HOLIDAYS, LAST_DAY, YEARLY_PRICE_RISE

__all__ = [
    "CATEGORY",
    "YEAR_LATER_DAYS",
    "Cells",
    "Choice",
    "Period",
    "Records",
    "Shift",
    "Window",
    "World",
    "learn_world",
    "make_shifts",
]

Records = dict[str, npt.NDArray[Any]]
"""Raw records field by field, the columns :func:`transformer.features.compute_features` takes."""

#: Days that move a date one year later on the same weekday (52 weeks).
YEAR_LATER_DAYS: Final = 364
#: The category whose share the ``category`` shift lowers (the issue's example).
CATEGORY: Final = "produce"
#: The discount the ``discount`` shift gives (the issue's example: rows gaining 10 %).
SHIFT_DISCOUNT: Final = 0.10

_FIRST_YEAR: Final = int(FIRST_DAY.astype("datetime64[Y]").astype(np.int64)) + 1970
_DAYS: Final = int((LAST_DAY - FIRST_DAY).astype(np.int64)) + 1


@dataclass(frozen=True)
class Period:
    """The days a window's rows are drawn from, ``[first, last)`` counted from FIRST_DAY.

    ``years_later`` shows them that many years later: dates moved by 52 weeks per year
    (same weekday, the holiday flags of the generated day) and prices raised by the
    generator's yearly price rise.
    """

    first: int
    last: int
    years_later: int = 0

    @classmethod
    def month(cls, year: int, month: int, years_later: int = 0) -> Period:
        """The days of one calendar month of the generated period.

        Examples
        --------
        >>> Period.month(2024, 2)
        Period(first=31, last=60, years_later=0)
        """
        start = np.datetime64(f"{year:04d}-{month:02d}", "M")
        first, last = (
            int((m.astype("datetime64[D]") - FIRST_DAY).astype(np.int64))
            for m in (start, start + 1)
        )
        return cls(first, last, years_later)


@dataclass(frozen=True)
class Cells:
    """Rows as positions in the world: generated day (from FIRST_DAY), store, item."""

    day: npt.NDArray[np.int64]
    store: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    years_later: int = 0

    def __len__(self) -> int:
        return len(self.day)

    def take(self, rows: npt.NDArray[np.int64]) -> Cells:
        """The cells at positions ``rows``."""
        return Cells(self.day[rows], self.store[rows], self.item[rows], self.years_later)


@dataclass(frozen=True)
class Choice:
    """Values drawn with the frequencies they were seen with."""

    values: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    @classmethod
    def of(cls, seen: npt.NDArray[np.float64]) -> Choice:
        values, counts = np.unique(seen, return_counts=True)
        return cls(values, counts / counts.sum())

    def draw(self, rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
        return rng.choice(self.values, size=size, p=self.weights)


@dataclass(frozen=True)
class World:
    """What the generator gives every (day, store, item) cell of its period."""

    store_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.str_]
    item_category: npt.NDArray[np.str_]
    price: npt.NDArray[np.float64]
    """unit_price by year of the period, store and item."""
    promotion: npt.NDArray[np.float64]
    """The discount of each promoted (item, week), 0 where the item is not promoted."""
    markdown_rate: float
    """Share of unpromoted rows with a (markdown) discount."""
    markdowns: Choice
    promotion_discounts: Choice
    unseen_promotions: int
    """(item, week) pairs the sample never held, taken as not promoted."""

    @property
    def days(self) -> int:
        """Days of the generated period."""
        return _DAYS

    def cells(self, period: Period, rows: int, rng: np.random.Generator) -> Cells:
        """``rows`` cells drawn uniformly, with replacement, from the period's days."""
        return Cells(
            rng.integers(period.first, period.last, rows),
            rng.integers(0, len(self.store_ids), rows),
            rng.integers(0, len(self.item_ids), rows),
            period.years_later,
        )

    def records(self, cells: Cells, rng: np.random.Generator) -> Records:
        """The raw records of ``cells``: what the generator gives each (markdowns drawn)."""
        days = FIRST_DAY + cells.day.astype("timedelta64[D]")
        year = _year(days)
        discount = self.promotion[cells.item, cells.day // 7]
        on_promotion = discount > 0
        markdown = ~on_promotion & (rng.random(len(cells)) < self.markdown_rate)
        discount = np.where(markdown, self.markdowns.draw(rng, len(cells)), discount)
        price = self.price[year, cells.store, cells.item]
        if cells.years_later:
            later = year + cells.years_later
            price = np.round(price * _rise(later) / _rise(year), 2)
        shown = days + np.timedelta64(YEAR_LATER_DAYS * cells.years_later, "D")
        return {
            "date": np.datetime_as_string(shown, unit="D"),
            "store_id": self.store_ids[cells.store],
            "item_id": self.item_ids[cells.item],
            "category": self.item_category[cells.item],
            "unit_price": price,
            "discount_pct": discount,
            "on_promotion": on_promotion,
            "is_holiday": np.isin(days, np.array(HOLIDAYS, dtype="datetime64[D]")),
        }


def learn_world(sales: pd.DataFrame) -> World:
    """Read the world off generated rows (``generate_sales(rows, seed)``, one seed).

    Raises
    ------
    ValueError
        When a row is not what the world read off all rows gives its cell (the
        generator changed: this module must follow it), or when the sample is too small
        to hold a price for every (store, item, year).
    """
    dates, date = _codes(sales["date"])
    day = (dates.astype("datetime64[D]") - FIRST_DAY).astype(np.int64)[date]
    store_ids, store = _codes(sales["store_id"])
    item_ids, item = _codes(sales["item_id"])
    categories, category_code = _codes(sales["category"])
    category = categories[category_code]
    unit_price = sales["unit_price"].to_numpy(dtype=np.float64)
    discount = sales["discount_pct"].to_numpy(dtype=np.float64)
    promoted = sales["on_promotion"].to_numpy(dtype=bool)
    year = _year(FIRST_DAY + day.astype("timedelta64[D]"))
    week = day // 7

    item_category = np.empty(len(item_ids), dtype=category.dtype)
    item_category[item] = category
    price = np.full((_year(np.array([LAST_DAY]))[0] + 1, len(store_ids), len(item_ids)), np.nan)
    price[year, store, item] = unit_price
    promotion = np.zeros((len(item_ids), _DAYS // 7 + 1))
    promotion[item[promoted], week[promoted]] = discount[promoted]
    seen = np.zeros(promotion.shape, dtype=bool)
    seen[item, week] = True

    holiday = np.isin(
        FIRST_DAY + day.astype("timedelta64[D]"), np.array(HOLIDAYS, dtype="datetime64[D]")
    )
    differs = (
        (item_category[item] != category)
        | (price[year, store, item] != unit_price)
        | ((promotion[item, week] > 0) != promoted)
        | (promoted & (promotion[item, week] != discount))
        | (holiday != sales["is_holiday"].to_numpy(dtype=bool))
    )
    if differs.any():
        row = int(np.flatnonzero(differs)[0])
        raise ValueError(
            f"{int(differs.sum())} generated row(s) differ from the world read off them, "
            f"e.g. row {row}: {sales.iloc[row].to_dict()}; monitoring/traffic.py expects one "
            "category per item, prices per (store, item, year), promotions per (item, week) "
            "and the HOLIDAYS calendar, as training/dataset.py made them"
        )
    price = _fill_unseen_years(price)
    markdown = ~promoted & (discount > 0)
    return World(
        store_ids=store_ids,
        item_ids=item_ids,
        item_category=item_category,
        price=price,
        promotion=promotion,
        markdown_rate=float(markdown.sum() / max(int((~promoted).sum()), 1)),
        markdowns=Choice.of(discount[markdown]),
        promotion_discounts=Choice.of(discount[promoted]),
        unseen_promotions=int((~seen).sum()),
    )


def _codes(column: pd.Series) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.int64]]:
    """The sorted distinct strings of ``column``, and each row's position among them."""
    codes, uniques = pd.factorize(column, sort=True)
    return np.asarray(uniques, dtype=str), np.asarray(codes, dtype=np.int64)


def _year(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    """Year of the generated period: 0 for the first."""
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970 - _FIRST_YEAR
    return np.asarray(years, dtype=np.int64)


def _rise(year: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The generator's price level of a year of the period, against the first's."""
    return np.asarray(1.0 + YEARLY_PRICE_RISE * np.asarray(year), dtype=np.float64)


def _fill_unseen_years(price: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A (store, item) price never seen in one year, from another year's, risen or not."""
    years = np.arange(price.shape[0])
    for year in years:
        for other in years[years != year]:
            missing = np.isnan(price[year]) & ~np.isnan(price[other])
            price[year][missing] = np.round(price[other][missing] * _rise(year) / _rise(other), 2)
    if np.isnan(price).any():
        raise ValueError(
            f"{int(np.isnan(price).sum())} (store, item, year) prices were never generated: "
            "generate more rows to read the world off (--pool_rows)"
        )
    return price


@dataclass(frozen=True)
class Window:
    """One window's rows before any shift: their cells and raw records."""

    world: World
    cells: Cells
    records: Records


ShiftFunction = Callable[[Window, float, np.random.Generator], Records]


@dataclass(frozen=True)
class Shift:
    """A move of raw records away from the reference, by a magnitude."""

    name: str
    unit: str
    """What a magnitude counts: ``sd`` (of the reference's unit_price) or ``points``."""
    description: str
    grid: tuple[float, ...]
    """Magnitudes evaluated by default, ascending."""
    apply: ShiftFunction


def make_shifts(price_sd: float) -> dict[str, Shift]:
    """The shifts, the price one in units of ``price_sd`` (the reference's unit_price sd)."""

    def price(window: Window, magnitude: float, rng: np.random.Generator) -> Records:
        out = dict(window.records)
        out["unit_price"] = np.round(window.records["unit_price"] + magnitude * price_sd, 2)
        return out

    shifts = [
        Shift("price", "sd", "unit_price + k sd", (0.02, 0.05, 0.1, 0.2, 0.5), price),
        Shift(
            "category",
            "points",
            f"{CATEGORY}'s share of rows - k points (its rows become other categories' items)",
            (1, 2, 3, 5, 10),
            _category_share,
        ),
        Shift(
            "discount",
            "points",
            f"k points of the rows, undiscounted ones, gain a {SHIFT_DISCOUNT:.0%} discount",
            (1, 2, 3, 5, 10),
            _discounted_share,
        ),
        Shift(
            "promotion",
            "points",
            "promoted share of rows + k points (with promotion discounts)",
            (1, 2, 3, 5, 10),
            _promoted_share,
        ),
    ]
    return {shift.name: shift for shift in shifts}


def _category_share(window: Window, points: float, rng: np.random.Generator) -> Records:
    world = window.world
    rows = _pick(world.item_category[window.cells.item] == CATEGORY, points, rng, CATEGORY)
    others = np.flatnonzero(world.item_category != CATEGORY)
    moved = window.cells.take(rows)
    moved = Cells(moved.day, moved.store, rng.choice(others, len(rows)), moved.years_later)
    out = _copy(window.records)
    for name, values in world.records(moved, rng).items():
        out[name][rows] = values
    return out


def _discounted_share(window: Window, points: float, rng: np.random.Generator) -> Records:
    rows = _pick(window.records["discount_pct"] == 0, points, rng, "undiscounted")
    out = _copy(window.records)
    out["discount_pct"][rows] = SHIFT_DISCOUNT
    return out


def _promoted_share(window: Window, points: float, rng: np.random.Generator) -> Records:
    rows = _pick(~window.records["on_promotion"], points, rng, "unpromoted")
    out = _copy(window.records)
    out["on_promotion"][rows] = True
    out["discount_pct"][rows] = window.world.promotion_discounts.draw(rng, len(rows))
    return out


def _pick(
    eligible: npt.NDArray[np.bool_], points: float, rng: np.random.Generator, what: str
) -> npt.NDArray[np.int64]:
    """``points`` percent of all rows, chosen among the eligible ones."""
    candidates = np.flatnonzero(eligible)
    wanted = round(points / 100 * len(eligible))
    if wanted > len(candidates):
        raise ValueError(
            f"a shift of {points} points needs {wanted} {what} rows; the window has "
            f"{len(candidates)} of {len(eligible)}"
        )
    return np.asarray(rng.choice(candidates, wanted, replace=False), dtype=np.int64)


def _copy(records: Records) -> Records:
    return {name: values.copy() for name, values in records.items()}
