"""A real KServe model behind a real data plane, for the handlers and the dispatcher."""

from __future__ import annotations

from typing import Any

import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane

__all__ = ["Doubling", "dataplane_serving"]


class Doubling(kserve.Model):  # type: ignore[misc]
    """Doubles what it is given: V2 tensors (each input to an output of the same name,
    BYTES repeated), or V1 ``instances``; and says which version answered."""

    def __init__(self, name: str = "m", *, ready: bool = True) -> None:
        super().__init__(name, return_response_headers=True)
        self.ready = ready

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        if response_headers is not None:
            response_headers["x-model-version"] = "7"
        if isinstance(payload, InferRequest):
            outputs = []
            for tensor in payload.inputs:
                data = tensor.as_numpy()
                doubled = data * 2 if tensor.datatype != "BYTES" else _repeated(data)
                outputs.append(InferOutput(tensor.name, list(data.shape), tensor.datatype, doubled))
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                model_version="7",
                infer_outputs=outputs,
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )
        return {"predictions": [2 * value for value in payload["instances"]]}


def _repeated(data: Any) -> Any:
    text = [value.decode() if isinstance(value, bytes) else str(value) for value in data.flat]
    return np.asarray([value * 2 for value in text], dtype=object).reshape(data.shape)


def dataplane_serving(*models: kserve.Model) -> DataPlane:
    """KServe's data plane over ``models`` (one ready :class:`Doubling` named m by default)."""
    repository = ModelRepository()
    for model in models or (Doubling(),):
        repository.update(model)
    return DataPlane(model_registry=repository)
