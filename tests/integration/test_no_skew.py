"""The features the transformer forwards are the features training computed."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pandas as pd
import pytest

from common.core.contract import FEATURE_NAMES, FEATURES
from harness.servers import Server
from tests.integration.conftest import Registry
from tests.integration.recording import recording_predictor
from tests.integration.test_serving import V1
from training.train import features_of
from transformer.schema import RAW_FIELDS


@pytest.mark.parametrize("binary", ["true", "false"])
def test_forwarded_features_equal_training_features_value_for_value(
    registry: Registry, start_transformer: Callable[..., Server], binary: str
) -> None:
    rows = pd.read_csv(registry.data_dir / "train.csv").sample(200, random_state=0)
    records = rows[list(RAW_FIELDS)].to_dict(orient="records")
    with recording_predictor() as recorder:
        transformer = start_transformer(
            f"127.0.0.1:{recorder.port}", "--predictor_binary_data", binary
        )
        response = httpx.post(f"{transformer.url}{V1}", json={"instances": records})
    assert response.status_code == 200, response.text

    (body,) = recorder.bodies
    assert body.get("binary", False) == (binary == "true")
    forwarded = {i["name"]: i for i in body["inputs"]}
    assert list(forwarded) == list(FEATURE_NAMES)
    assert [forwarded[f.name]["datatype"] for f in FEATURES] == [f.datatype for f in FEATURES]
    served = np.column_stack(
        [np.asarray(forwarded[n]["data"], dtype=np.float64) for n in FEATURE_NAMES]
    )
    trained = features_of(rows)
    assert served.shape == trained.shape == (200, len(FEATURE_NAMES))
    np.testing.assert_array_equal(served, trained)
