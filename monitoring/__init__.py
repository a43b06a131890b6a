"""Monitoring jobs: drift of served features, performance against ground truth, traffic.

``python -m monitoring drift | performance | simulate``; see ``monitoring.__main__``.
"""
