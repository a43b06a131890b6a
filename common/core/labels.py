"""Ground-truth labels joined to captured predictions: the rules, shared by the jobs that join.

``python -m monitoring performance`` (accuracy per window and version) and
``python -m rollout run --labels`` (accuracy of canary and stable on one interval) read
their files their own way, then hand the rows to these two functions, so a label joins
the same prediction, or is refused for the same reason, in both:

- :func:`keyed_rows`: ids, labels, versions and classes are names, read as text (``007``
  stays ``007``, a number ``7`` becomes ``"7"``); a row without ``request_id``, or whose
  ``row`` is not a non-negative integer, is refused;
- :func:`join_labels`: a label joins the captured prediction of the same
  ``(request_id, row)``. What would be a guess is refused and counted by reason: an empty
  label, a label not among the classes the captured predictions hold, several different
  labels for one row (identical duplicates count once), and every label of a request id
  that several captured requests share (clients choose their ids).

pandas is imported here, as the jobs that join carry it; no server imports this module.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import numpy as np
import pandas as pd

__all__ = [
    "AMBIGUOUS",
    "LABEL_COLUMNS",
    "PREDICTION_COLUMNS",
    "TEXT_COLUMNS",
    "join_labels",
    "keyed_rows",
]

#: What the join needs of each captured prediction (the capture store writes more).
PREDICTION_COLUMNS: Final = ("timestamp", "request_id", "row", "model_version", "predicted_class")
#: The columns of a labels file (an optional ``timestamp`` is not needed).
LABEL_COLUMNS: Final = ("request_id", "row", "label")
#: Columns that hold names: read as text from CSV, whatever digits they hold.
TEXT_COLUMNS: Final = ("request_id", "row", "label", "model_version", "predicted_class")
AMBIGUOUS: Final = "request_id shared by several captured requests: not joined"
_KEYS: Final = ["request_id", "row"]


def keyed_rows(frame: pd.DataFrame, refused: Counter[str]) -> pd.DataFrame:
    """``frame`` with its names as text and ``row`` as an integer; unusable rows refused.

    Rows without a ``request_id`` or with a ``row`` that is not a non-negative integer
    are dropped and counted in ``refused`` by reason.

    Examples
    --------
    >>> refused = Counter()
    >>> frame = pd.DataFrame({"request_id": ["a", None, "c"], "row": ["0", "1", "x"],
    ...                       "label": [7, "low", "high"]})
    >>> keyed_rows(frame, refused).to_dict("records")
    [{'request_id': 'a', 'row': 0, 'label': '7'}]
    >>> dict(refused)
    {'no request_id': 1, 'row is not a non-negative integer': 1}
    """
    frame = frame.copy()
    for name in ("request_id", "label", "model_version", "predicted_class"):
        if name in frame:
            frame[name] = frame[name].map(_text, na_action="ignore").astype(object)
    missing_id = frame["request_id"].isna()
    if missing_id.any():
        refused["no request_id"] += int(missing_id.sum())
    rows = pd.to_numeric(frame["row"].map(_text, na_action="ignore"), errors="coerce")
    bad_row = rows.isna() | (rows < 0) | (rows % 1 != 0)
    if bad_row.any():
        refused["row is not a non-negative integer"] += int((bad_row & ~missing_id).sum())
    keep = ~(missing_id | bad_row)
    frame = frame[keep].copy()
    frame["row"] = rows[keep].astype(np.int64)
    return frame.reset_index(drop=True)


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    refused_predictions: Counter[str],
    refused_labels: Counter[str],
) -> pd.DataFrame:
    """``predictions`` with a ``label`` column: the label of their row where it is certain.

    Both frames come from :func:`keyed_rows`. What cannot be joined without a guess is
    refused and counted (see the module); a refused row's prediction stays, unlabelled.

    Examples
    --------
    >>> predictions = pd.DataFrame({"request_id": ["a", "b", "b"], "row": [0, 0, 0],
    ...     "model_version": ["2", "3", "3"], "predicted_class": ["low", "high", "high"]})
    >>> labels = pd.DataFrame({"request_id": ["a", "b", "c"], "row": [0, 0, 0],
    ...                        "label": ["low", "low", "huge"]})
    >>> refused_predictions, refused_labels = Counter(), Counter()
    >>> joined = join_labels(predictions, labels, refused_predictions=refused_predictions,
    ...                      refused_labels=refused_labels)
    >>> joined["label"].tolist()
    ['low', nan, nan]
    >>> sorted(refused_labels.items())  # doctest: +NORMALIZE_WHITESPACE
    [("label not one of the model's classes", 1),
     ('request_id shared by several captured requests: not joined', 1)]
    """

    def refuse(mask: pd.Series, reason: str) -> None:
        nonlocal labels
        if mask.any():
            refused_labels[reason] += int(mask.sum())
            labels = labels[~mask]

    classes = set(predictions["predicted_class"].dropna())
    refuse(labels["label"].isna() | (labels["label"].str.strip() == ""), "empty label")
    if classes:  # without predictions nothing joins: no label is refused for its class
        refuse(~labels["label"].isin(classes), "label not one of the model's classes")
    labels = labels.drop_duplicates([*_KEYS, "label"])
    refuse(labels.duplicated(_KEYS, keep=False), "conflicting labels for one row")

    shared = predictions.duplicated(_KEYS, keep=False)
    ambiguous = set(predictions.loc[shared, "request_id"])
    if ambiguous:
        refused_predictions[AMBIGUOUS] += int(predictions["request_id"].isin(ambiguous).sum())
        refuse(labels["request_id"].isin(ambiguous), AMBIGUOUS)
    # a refused id's labels were removed above: its predictions stay, unlabelled
    return predictions.merge(
        labels[list(LABEL_COLUMNS)], on=_KEYS, how="left", validate="many_to_one"
    )


def _text(value: object) -> str:
    """A name as text: ``7`` from an integer column, ``"007"`` as it was written."""
    return value if isinstance(value, str) else str(value)
