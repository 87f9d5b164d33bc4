"""Helpers shared by the benchmarks and the tests: a real server in a subprocess.

They live in :mod:`deploy.services`, beside the other real servers (PostgreSQL, Redis, nginx)
that the cluster starts; imported from here by the benchmarks and tests that predate it.
"""

from deploy.services import ROOT, ServerProcess, free_port, proc_status

__all__ = ["ROOT", "ServerProcess", "free_port", "proc_status"]
