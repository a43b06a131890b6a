"""The V1 and V2 inference protocols: tensors, V2 JSON, request bodies, answers, row limits."""
