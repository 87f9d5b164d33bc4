"""Helpers shared by the benchmarks and the tests: a real server in a subprocess.

They live in :mod:`deploy.services`, beside the other real servers (PostgreSQL, Redis, nginx)
that the cluster starts; imported from here by the benchmarks and tests that predate it.
"""

from deploy.services import ROOT, ServerProcess, free_port, proc_status

__all__ = ["ROOT", "ServerProcess", "free_port", "percentile", "proc_status"]


def percentile(values: list[float], q: float) -> float:
    """The value at quantile ``q`` of ``values`` (nearest rank); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
