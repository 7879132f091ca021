"""The directory where every worker of one ``serve`` writes its Prometheus values.

Chosen by the supervisor before any worker starts, and before prometheus_client is imported
(which is why this module does not import it): PROMETHEUS_MULTIPROC_DIR if the operator named
one, emptied of a previous run's files; else ``<tmp>/gql_service-metrics-<pid>``. uvicorn ends
on SIGTERM by raising the signal again, so nothing runs after it: each start removes the
directories of servers that are no longer running instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "gql_service-metrics-"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process: alive
        return True
    return True


def prepare_multiprocess_dir(env: MutableMapping[str, str]) -> Path:
    """Point prometheus_client (through ``env``) at an empty directory for this server."""
    named = env.get(MULTIPROC_ENV)
    if named:
        directory = Path(named)
    else:
        root = Path(tempfile.gettempdir())
        for old in root.glob(f"{PREFIX}*"):
            pid = old.name.removeprefix(PREFIX)
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        directory = root / f"{PREFIX}{os.getpid()}"
        env[MULTIPROC_ENV] = str(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous server's values
        stale.unlink()
    return directory
