"""What the parts share, in three layers; each imports only those below it.

- :mod:`common.core`: the feature contract, errors, model URIs, settings, the command
  line, logs. Pydantic and NumPy only: the monitoring image carries just this layer.
- :mod:`common.protocol`: the V1/V2 codecs: tensors, V2 JSON, bodies, answers, row limits.
- :mod:`common.serving`: the model server: the KServe adapter, the edge, dispatch,
  endpoints, error answers, metrics, micro-batching, the launch.
"""
