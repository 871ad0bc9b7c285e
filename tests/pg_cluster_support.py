"""A PostgreSQL cluster of a test's own: ``initdb``'d, on a free port, stopped and started at will.

The machine's shared PostgreSQL cannot be stopped in the middle of a test without disturbing
everyone else, so tests that take the database away start their own cluster, run as the
``postgres`` user with trust authentication, under a temporary directory that user can reach.
:func:`new_pg_cluster` skips the test when the server binaries or the user are missing.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from signalhub.broker.process import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PgCluster:
    """A PostgreSQL cluster of this test's own: ``initdb``'d, run as ``postgres``, trust auth."""

    root: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                *args,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("start", "-w", "-l", str(self.root / "log"), "-o", options)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: open sessions are cut, as when an operator restarts it."""
        self._ctl("stop", "-w", "-m", "fast")


@contextmanager
def new_pg_cluster() -> Iterator[PgCluster]:
    """A new, running cluster on a free port; stopped and removed afterwards."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(
            f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql-15)"
        )
    if shutil.which("runuser") is None:
        pytest.skip("runuser not found: cannot run PostgreSQL as the postgres user")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run a PostgreSQL cluster as")
    # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
    root = Path(tempfile.mkdtemp(prefix="signalhub-pg-"))
    try:
        shutil.chown(root, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster = PgCluster(root, free_port())
        cluster.start()
        try:
            yield cluster
        finally:
            with suppress(subprocess.CalledProcessError):
                cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def postgres_dsn(cluster: PgCluster) -> str:
    """A DSN for a fresh schema of its own on ``cluster``."""
    schema = f"audit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{cluster.dsn}?options=-csearch_path%3D{schema}"
