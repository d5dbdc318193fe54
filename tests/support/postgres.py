"""A throw-away PostgreSQL server for tests: initdb into a temporary folder, started on a free
127.0.0.1 port, stopped and deleted afterwards.

Debian's `postgresql` package keeps its binaries in `/usr/lib/postgresql/<version>/bin` (not on
PATH). PostgreSQL refuses to run as root, and CI runs as root: there the server runs as the
`postgres` user the package creates (else `nobody`), in a folder under /tmp that user owns
(pytest's own tmp_path is root's alone, mode 0700, so another user cannot reach into it).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.tools import missing

USER = "mlc"
DATABASE = "postgres"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """SQLAlchemy URL with the psycopg (3) driver and the password in it."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/"
            f"{self.database}"
        )


def _binaries() -> Path:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        missing("PostgreSQL (the Debian package 'postgresql': initdb, pg_ctl)")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _runner() -> tuple[list[str], int | None, int | None]:
    """Command prefix running as a user PostgreSQL accepts, with that user's uid and gid."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", name, "--"], entry.pw_uid, entry.pw_gid
    missing("a non-root user to run PostgreSQL as (runuser and a 'postgres' or 'nobody' user)")
    raise AssertionError("unreachable")


@contextmanager
def postgres_server() -> Iterator[Server]:
    """A running server with a password-protected superuser; stopped and removed on exit."""
    bin_dir = _binaries()
    prefix, uid, gid = _runner()
    root = Path(tempfile.mkdtemp(prefix="mlc-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    password = secrets.token_hex(12)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if uid is not None and gid is not None:
        for path in (root, sock, pwfile):
            os.chown(path, uid, gid)
    port = _free_port()
    log = root / "server.log"
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, env=env, cwd=root, timeout=120
        )

    started = False
    try:
        done = run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        assert done.returncode == 0, f"initdb failed: {done.stdout}\n{done.stderr}"
        options = (
            f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=50 "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        done = run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"
        )
        logged = log.read_text() if log.exists() else ""
        assert done.returncode == 0, f"pg_ctl start failed: {done.stderr}\n{logged}"
        started = True
        yield Server("127.0.0.1", port, USER, password, DATABASE)
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
