"""Running EmoCare on more than one process: the local cluster (``make cluster``) and the
real services it and the tests start (PostgreSQL, Redis, nginx), from Debian's packages."""
