"""`mlc serve --workers N`: N processes answering on one socket, exporting one set of metrics.

The supervisor binds the socket, then starts N workers (`python -m mlc.runtime.serving
--worker-fd FD`), each loading the models itself and accepting on the inherited socket; the plan
reaches them in their environment (`MLC_SERVE_PLAN`), never on disk, since it may hold secret
values. SIGTERM or SIGINT is passed on to every worker, each drains its requests and flushes
its log; a worker that dies takes the server down (exit 2) rather than serve at reduced
capacity without anyone noticing.

Metrics: each worker writes a snapshot of its series every `SHARE_S` seconds into a private
folder, and a scrape of any worker returns its own live series plus the others' snapshots, so
Prometheus sees the whole server whichever worker answers. Prediction logs share the folder:
workers number their segments apart (`predlog.WORKER_SEQS`).

A canary or blue-green rollout is a state held in one process (weights, bake window, decisions),
so those strategies serve with one worker; replicas scale them on a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlc.runtime.serving.metrics import ServingMetrics

SHARE_S = 1.0
PLAN_ENV = "MLC_SERVE_PLAN"
ONE_PROCESS = ("canary", "blue_green")


class SharedMetrics:
    """One worker's side of the shared metrics folder."""

    def __init__(self, metrics: ServingMetrics, folder: str, index: int) -> None:
        self.metrics = metrics
        self.folder = Path(folder)
        self.index = index
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlc-metrics", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        path = self.folder / f"worker-{self.index}.json"
        tmp = self.folder / f".worker-{self.index}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(self.metrics.snapshot()))
        os.replace(tmp, path)

    def _loop(self) -> None:
        while not self._stop.wait(SHARE_S):
            with contextlib.suppress(OSError):
                self._write()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._write()  # the last counts stay in the sum after this worker stops

    def others(self) -> list[dict[str, list[Any]]]:
        found = []
        for path in sorted(self.folder.glob("worker-*.json")):
            if path.name == f"worker-{self.index}.json":
                continue
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def supervise(
    plan: dict[str, Any],
    host: str,
    port: int,
    workers: int,
    log_level: str = "warning",
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> int:
    """Run `workers` worker processes on one socket until SIGTERM/SIGINT; the exit code."""
    kind = (plan.get("strategy") or {}).get("kind", "recreate")
    if kind in ONE_PROCESS:
        print(
            f"error: strategy '{kind}' keeps its rollout in one process: serve it with "
            "--workers 1 (scale it with replicas)",
            file=sys.stderr,
        )
        return 2
    try:
        sock = _listen(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    shared = tempfile.mkdtemp(prefix="mlc-serve-metrics-")
    children: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        for index in range(workers):
            doc = {**plan, "worker": {"index": index, "count": workers, "metrics_dir": shared}}
            args = [
                sys.executable,
                "-m",
                "mlc.runtime.serving",
                "--worker-fd",
                str(sock.fileno()),
                "--log-level",
                log_level,
            ]
            if tls_cert and tls_key:
                args += ["--tls-cert", tls_cert, "--tls-key", tls_key]
            env = {**os.environ, PLAN_ENV: json.dumps(doc)}
            children.append(subprocess.Popen(args, env=env, pass_fds=(sock.fileno(),)))
        code = 0
        while not stopping.is_set():
            dead = [c for c in children if c.poll() is not None]
            if dead:
                code = 2
                print(
                    f"error: worker pid {dead[0].pid} exited {dead[0].returncode}; stopping",
                    file=sys.stderr,
                )
                stop()
                break
            time.sleep(0.2)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=float(plan.get("limits", {}).get("timeout_s", 10)) + 20)
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.returncode not in (0, -signal.SIGTERM) and not code:
                code = 2
        return code
    finally:
        sock.close()
        for path in Path(shared).glob("*"):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            Path(shared).rmdir()
