#!/usr/bin/env python3
"""A throwaway PostgreSQL cluster on 127.0.0.1: for the team-tracking test and for trying the team setup.

``python scripts/pg_throwaway.py`` starts one, prints the ``BACKEND=postgresql+psycopg2://...`` URI for
``make mlflow-server`` and deletes everything on Ctrl-C. Tests use :func:`throwaway_postgres`.

The server binaries come from the Debian package ``postgresql`` (``apt-get install -y postgresql``); they
live in ``/usr/lib/postgresql/<version>/bin``, which is not on PATH, so that folder is searched too.
PostgreSQL refuses to run as root: when we are root, ``initdb``/``pg_ctl`` run as an unprivileged user
(``postgres``, created by the Debian package, else ``nobody``) on a folder under the system temp dir that
this user owns (pytest's ``tmp_path`` is inside a root-only 0700 folder, so it cannot be used there).
The cluster listens on loopback only; TCP logins need the password printed in the URI.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("pg_throwaway")

INSTALL_HINT = "install the PostgreSQL server with `apt-get install -y postgresql` (Debian/Ubuntu)"
SUPERUSER = "uplr"
UNPRIVILEGED_USERS = ("postgres", "nobody")
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; the socket file name adds ~16


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (tests skip on this)."""


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then the newest Debian install."""
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).resolve().parent / "pg_ctl").exists():
        return Path(initdb).resolve().parent

    def version(p: Path) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in p.parent.name.split("."))
        except ValueError:
            return (0,)

    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()]
    return max(found, key=version) if found else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to port 0 and let the kernel pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The account to run the server as when we are root (PostgreSQL refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable(
        f"running as root and none of the users {', '.join(UNPRIVILEGED_USERS)} exists to run PostgreSQL as "
        "(the Debian package `postgresql` creates `postgres`)"
    )


@dataclass
class PgCluster:
    """A running throwaway cluster; :meth:`stop` stops it and deletes its files."""

    bin_dir: Path
    base: Path
    port: int
    password: str = field(repr=False)
    user: pwd.struct_passwd | None = None
    host: str = "127.0.0.1"
    superuser: str = SUPERUSER
    _running: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    def uri(self, database: str = "mlflow", driver: str = "psycopg2") -> str:
        """SQLAlchemy URI of ``database`` (SQLAlchemy 2 wants the driver named: ``postgresql+psycopg2``)."""
        return f"postgresql+{driver}://{self.superuser}:{self.password}@{self.host}:{self.port}/{database}"

    def _cmd(self, args: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a server binary, as the unprivileged user when we are root."""
        kw: dict = {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        if self.user is not None:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            env["HOME"] = str(self.base)
        proc = subprocess.run(args, cwd=self.base, env=env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
                + self.log_tail()
            )
        return proc

    def log_tail(self, n: int = 20) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n--- postgres log ---\n" + "\n".join(lines) if lines else ""

    def init(self) -> None:
        """``initdb``: superuser ``uplr``, password logins over TCP (scram), trust on the private socket."""
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        self._cmd([
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ], timeout=120)
        pwfile.unlink()

    def start(self) -> None:
        """``pg_ctl start`` on 127.0.0.1:port with the socket in our folder (not /var/run/postgresql)."""
        opts = f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} -c fsync=off"
        self._cmd([str(self.bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
                   "-l", str(self.log_file), "-o", opts], timeout=90)
        self._running = True

    def createdb(self, name: str) -> None:
        self._cmd([str(self.bin_dir / "createdb"), "-h", str(self.socket_dir), "-p", str(self.port),
                   "-U", self.superuser, name])

    def stop(self) -> None:
        """``pg_ctl stop -m immediate`` (throwaway data, no clean shutdown needed), then delete the folder."""
        try:
            if self._running:
                self._cmd([str(self.bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-w", "-D", str(self.data_dir)],
                          check=False, timeout=60)
                self._running = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)


def start_cluster(database: str = "mlflow", port: int | None = None, attempts: int = 3) -> PgCluster:
    """Create, start and fill a cluster with an empty ``database``; raises PostgresUnavailable without binaries."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {INSTALL_HINT}")
    user = _run_as()
    last: Exception | None = None
    for _ in range(attempts):  # a free port can be taken between the probe and the start: retry
        base = Path(tempfile.mkdtemp(prefix="uplr-pg-"))
        cluster = PgCluster(bin_dir, base, port or free_port(), secrets.token_hex(12), user)
        if len(str(cluster.socket_dir)) > SOCKET_PATH_MAX:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"socket folder {cluster.socket_dir} is too long for a Unix socket; set TMPDIR=/tmp")
        try:
            cluster.socket_dir.mkdir()
            for p in (base, cluster.socket_dir):
                cluster._own(p)
            cluster.init()
            cluster.start()
            cluster.createdb(database)
            return cluster
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            last = exc
            cluster.stop()
            if port is not None:
                break
    raise RuntimeError(f"could not start a throwaway PostgreSQL cluster: {last}")


@contextlib.contextmanager
def throwaway_postgres(database: str = "mlflow") -> Iterator[PgCluster]:
    """A running cluster with an empty ``database`` for the ``with`` block; always stopped and deleted."""
    cluster = start_cluster(database)
    try:
        yield cluster
    finally:
        cluster.stop()


def wait_until_ready(cluster: PgCluster, database: str = "mlflow", timeout: float = 30) -> None:
    """Block until a TCP login with the URI's credentials works (pg_ctl -w only checks the socket)."""
    env = {**os.environ, "PGPASSWORD": cluster.password}
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run([str(cluster.bin_dir / "pg_isready"), "-h", cluster.host, "-p", str(cluster.port),
                               "-U", cluster.superuser, "-d", database], env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL on {cluster.host}:{cluster.port} not ready: {proc.stdout.strip()}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default="mlflow")
    ap.add_argument("--port", type=int, default=None, help="default: a free port")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cluster = start_cluster(args.database, args.port)
    except (PostgresUnavailable, RuntimeError) as exc:
        print(f"pg_throwaway: error: {exc}")
        return 2
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        wait_until_ready(cluster, args.database)
        print(f"PostgreSQL {cluster.bin_dir.parent.name} on {cluster.host}:{cluster.port} (files in {cluster.base})")
        print(f"  make mlflow-server BACKEND='{cluster.uri(args.database)}'")
        print("Ctrl-C stops it and deletes its data.", flush=True)
        while not stop["now"]:
            time.sleep(0.5)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
