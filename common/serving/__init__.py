"""The model server: the KServe adapter, the edge every request passes, dispatch to the
endpoints, the one error answer, metrics, micro-batching, and the launch."""
