"""A throwaway PostgreSQL server for tests: `initdb` a cluster in a temp folder, start it with
`pg_ctl` on a free 127.0.0.1 port, hand out fresh databases, then stop it and delete the folder.

PostgreSQL refuses to run as root, so as root the server runs as the unprivileged `postgres`
system user (Debian's package creates it); as anyone else it runs as that user.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SERVER_USER = "postgres"


class ClusterUnavailable(RuntimeError):
    """Why no throwaway cluster can be made here (the tests skip with this reason)."""


def find_binaries() -> Path:
    """The folder holding `initdb` and `pg_ctl`: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(on_path[0]).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise ClusterUnavailable("PostgreSQL's initdb/pg_ctl not found (install Debian's `postgresql` "
                             "package: apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """`with PostgresCluster() as pg: url = pg.create_database()` (SQLAlchemy URLs, psycopg)."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            import pwd

            try:
                self.server_uid = pwd.getpwnam(SERVER_USER).pw_uid
            except KeyError:
                raise ClusterUnavailable(f"running as root and there is no {SERVER_USER!r} system "
                                         "user to run PostgreSQL as (it refuses root)") from None
            if not shutil.which("runuser"):
                raise ClusterUnavailable("running as root without `runuser` to drop to the postgres user")
        try:
            import psycopg  # noqa: F401  (SQLAlchemy's postgresql driver)
        except ImportError:
            raise ClusterUnavailable("psycopg is not installed (pip install 'psycopg[binary]')") from None
        self.root: Path | None = None
        self.port = 0
        self.admin_url = ""

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)

    def start(self) -> "PostgresCluster":
        self.root = Path(tempfile.mkdtemp(prefix="vadclip-pg-"))
        if self.as_root:
            os.chown(self.root, self.server_uid, -1)
        data = self.root / "data"
        done = self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                         "--no-sync", "--no-instructions")
        if done.returncode:
            self.stop()
            raise ClusterUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        for attempt in range(3):                   # another process may grab the port meanwhile
            self.port = free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
            done = self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "server.log"),
                             "-w", "-t", "60", "start")
            if done.returncode == 0:
                break
        else:
            log = (self.root / "server.log").read_text(errors="replace")[-800:] \
                if (self.root / "server.log").exists() else done.stderr
            self.stop()
            raise ClusterUnavailable(f"pg_ctl could not start the server: {log.strip()}")
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        return self

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
