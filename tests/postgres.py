"""A throwaway PostgreSQL 15 cluster, started and removed by the suite.

The session shares one cluster; fault tests take their own, which they can stop and start again
on the same port, or freeze (every server process SIGSTOPped: TCP still connects, nothing
answers) and thaw.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

PG_BIN_DIRS = [Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))]


def find_pg_bin() -> Path | None:
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class Cluster:
    """One initialised cluster on a fixed loopback port, which can be stopped and started."""

    def __init__(self, pg_bin: Path, root: Path, port: int) -> None:
        self.pg_bin = pg_bin
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            _as_postgres([str(self.pg_bin / "pg_ctl"), "-D", str(self.data), *args]),
            check=check,
            capture_output=True,
        )

    def init(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    str(self.pg_bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        # Always -l: without a log file a captured pg_ctl never returns.
        self._pg_ctl("-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" ends sessions cleanly, "immediate" as in a crash."""
        self._pg_ctl("-m", mode, "-w", "stop", check=False)

    def processes(self) -> list[int]:
        """The postmaster and every process it started."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(entry.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Stop every server process: connections stay open, nothing answers."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster on a free loopback port; yield its base URL; stop and delete it."""
    with restartable_cluster() as cluster:
        yield cluster.url


@contextmanager
def restartable_cluster() -> Iterator[Cluster]:
    """A started cluster of its own, to stop, start, freeze and thaw; deleted afterwards."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="gql_service_pg_"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    cluster = Cluster(pg_bin, root, _free_port())
    try:
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            with suppress(OSError, ValueError):
                cluster.thaw()
            cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def terminate_sessions(database_url: str, pid: int | None = None) -> int:
    """End on the server the sessions of ``database_url``'s database (only ``pid``, if given),
    as an administrator or a restart would; how many were ended."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    base, _, database = database_url.rpartition("/")
    admin = create_async_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            ended = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :database AND pid <> pg_backend_pid() "
                    "AND (CAST(:pid AS integer) IS NULL OR pid = :pid)"
                ),
                {"database": database, "pid": pid},
            )
            return int(ended.scalar() or 0)
    finally:
        await admin.dispose()
