"""Run real servers as local processes: free ports, MLflow, the model servers.

What the integration tests and the benchmarks both need, kept out of either so
that neither depends on the other. Not part of any image.
"""
