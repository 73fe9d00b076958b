"""A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, `pg_ctl` on a free port, stopped
and removed afterwards. PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.appliance import free_port


def postgres_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/*/bin` with initdb, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """`start()` creates and starts a cluster with trust auth on 127.0.0.1; `url` is a SQLAlchemy URL."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (make test installs the `postgresql` package)")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="qms-pg-"))
        self.datadir = self.root / "data"
        self.run_as: str | None = "postgres" if os.geteuid() == 0 else None
        self._databases = itertools.count(1)

    @property
    def url(self) -> str:
        """`postgresql+psycopg://…/postgres` on the cluster."""
        user = self.run_as or pwd.getpwuid(os.geteuid()).pw_name
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/postgres"

    def new_database(self, prefix: str = "qms_test") -> str:
        """A new, empty database in the cluster (`<prefix>_<n>`); its SQLAlchemy URL."""
        import sqlalchemy as sa  # only the tests that use PostgreSQL pay for it

        name = f"{prefix}_{next(self._databases)}"
        admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> PostgresCluster:
        """initdb + pg_ctl start (waits until it accepts connections)."""
        if self.run_as is not None:
            info = pwd.getpwnam(self.run_as)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", options, "-l",
                  str(self.root / "pg.log"), "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop immediately and delete the cluster."""
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
