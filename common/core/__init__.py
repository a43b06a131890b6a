"""The core: the feature contract, errors, model URIs, settings, the command line, logs.

Nothing here imports KServe, FastAPI or Starlette.
"""
