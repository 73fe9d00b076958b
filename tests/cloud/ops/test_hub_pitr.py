"""Point-in-time recovery of the hub's PostgreSQL (issue 16, E-PLAT-03) with a real server started here: WAL archived
by `archive_command` as docs/hub-operations.md configures it, a base backup by `pg_basebackup`, then rows committed
before and after a chosen moment; `qms-cloud db pitr-restore` brings a scratch server back to exactly that moment."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cloud.cli import app
from cloud.ops import pitr
from tests.support.appliance import free_port
from tests.support.postgres import PostgresCluster


def _owned(path: Path, cluster: PostgresCluster) -> Path:
    """A directory the server's user owns (as root the server runs as `postgres`)."""
    path.mkdir(mode=0o700, exist_ok=True)
    if cluster.run_as:
        info = pwd.getpwnam(cluster.run_as)
        os.chown(path, info.pw_uid, info.pw_gid)
    return path


@pytest.fixture
def archiving() -> Iterator[tuple[PostgresCluster, Path]]:
    """A cluster archiving its WAL into a directory: (cluster, a work dir the server's user owns; the archive is
    `wal-archive` in it)."""
    cluster = PostgresCluster().start()
    work = _owned(Path(tempfile.mkdtemp(prefix="qms-pitr-")), cluster)
    try:
        archive = _owned(work / "wal-archive", cluster)
        with sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text("ALTER SYSTEM SET archive_mode = on"))
            conn.execute(sa.text(f"ALTER SYSTEM SET archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'"))
        cluster._run(str(cluster.bindir / "pg_ctl"), "-D", str(cluster.datadir), "-l", str(cluster.root / "pg.log"),
                     "-w", "-m", "fast", "restart")  # fmt: skip
        yield cluster, work
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def _archived(engine: sa.Engine) -> None:
    """Switch to a new WAL segment and wait until the archiver has copied the old one."""
    with engine.connect() as conn:
        segment = conn.execute(sa.text("SELECT pg_walfile_name(pg_switch_wal())")).scalar_one()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(sa.text("SELECT last_archived_wal FROM pg_stat_archiver")).scalar_one()
        if done is not None and done >= segment:
            return
        time.sleep(0.2)
    raise AssertionError(f"WAL segment {segment} was not archived")


def test_recovery_to_a_moment_into_a_scratch_data_dir(archiving: tuple[PostgresCluster, Path]) -> None:
    cluster, work = archiving
    archive = work / "wal-archive"
    engine = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE tickets (n int)"))
        conn.execute(sa.text("INSERT INTO tickets SELECT generate_series(1, 10)"))
        before_base: datetime = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    base = work / "base"
    user = cluster.run_as or pwd.getpwuid(os.geteuid()).pw_name
    command = [str(cluster.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", user,
               "-D", str(base), "-Fp", "-X", "none", "-c", "fast"]  # fmt: skip
    if cluster.run_as:
        _owned(base, cluster)
        command = ["runuser", "-u", cluster.run_as, "--", *command]
    made = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    with engine.connect() as conn:
        conn.execute(sa.text("INSERT INTO tickets SELECT generate_series(11, 20)"))
        moment: datetime = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        conn.execute(sa.text("INSERT INTO tickets SELECT generate_series(21, 30)"))
    _archived(engine)
    engine.dispose()

    early = work / "early"  # a moment the base backup cannot go back to: it was printed as "recovered to" it
    refused = CliRunner().invoke(app, ["db", "pitr-restore", "--base-backup", str(base), "--wal-archive",
                                       str(archive), "--target-time", (before_base - timedelta(seconds=2)).isoformat(),
                                       "--data-dir", str(early), "--port", str(free_port())])  # fmt: skip
    assert refused.exit_code == 1, refused.output
    assert "before the base backup" in refused.output
    assert not early.exists()

    scratch = work / "scratch"
    port = free_port()
    recovered = CliRunner().invoke(app, ["db", "pitr-restore", "--base-backup", str(base), "--wal-archive",
                                         str(archive), "--target-time", moment.isoformat(), "--data-dir",
                                         str(scratch), "--port", str(port)])  # fmt: skip
    assert recovered.exit_code == 0, recovered.output
    server = pitr.RecoveredServer(scratch, port, scratch, cluster.run_as)
    try:
        done = pitr._run(["psql", server.libpq, "-Atc", "SELECT count(*), max(n) FROM tickets"], cluster.run_as)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "20|20"  # everything committed up to the moment, nothing after it
        assert "archive_mode = 'off'" in (scratch / "postgresql.auto.conf").read_text()
    finally:
        pitr.stop(server)
