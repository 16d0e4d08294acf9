"""A real `bentoml serve` of the packaged bento on 127.0.0.1, with the serving spec under test."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pipelines.core.workspace import ROOT, tool_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


class Server:
    """The packaged bento served by `python -m services.serve` (what `make serve` runs) with a patched spec, its
    own runtime folder, prediction-log folder and a free port."""

    def __init__(
        self,
        home: Path,
        spec: dict[str, Any],
        workdir: Path,
        patch: dict[str, Any],
        log_dir: Path | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.spec = merge(spec, {"workers": 1, **patch})
        self.spec_path = workdir / "serving.json"
        self.spec_path.write_text(json.dumps(self.spec))
        self.log_dir = log_dir or workdir / "predictions"
        self.runtime = workdir / "runtime"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = workdir / "server.log"
        command = [
            sys.executable, "-m", "services.serve", "--system", "adult", "--store", str(home), "--port", str(self.port),
            "--spec", str(self.spec_path), "--log-dir", str(self.log_dir), "--runtime", str(self.runtime),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            env=tool_env(),
            cwd=ROOT,
            stdout=self.out.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self._wait_alive()

    def _wait_alive(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()}")
            try:
                if self.client.get("/livez").status_code == 200 and self._workers_started():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not alive after {timeout}s:\n{self.log()}")

    def _workers_started(self) -> bool:
        # /livez answers once the HTTP worker runs; readiness is what the tests check
        return self.client.get("/readyz").status_code in (200, 503)

    def log(self) -> str:
        return self.out.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The service's worker processes (children of the arbiter that run the service)."""
        import psutil

        pids = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker" in " ".join(
                    child.cmdline()
                ):
                    pids.append(child.pid)
            except psutil.Error:  # exited while we looked
                continue
        return sorted(pids)

    def predictions(self) -> list[dict[str, Any]]:
        lines = []
        for path in sorted(self.log_dir.glob("predictions-*.jsonl*")):
            lines += [json.loads(line) for line in path.read_text().splitlines() if line]
        return lines

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample over every series whose labels include ``labels``."""
        total = 0.0
        for line in self.client.get("/metrics").text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self.client.close()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="session")
def packaged(
    quick_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    """The BentoML home the package stage built (copied), its serving spec, and test rows to send."""
    repo, _ = quick_repo
    dest = tmp_path_factory.mktemp("served")
    home = Path(shutil.copytree(repo / "artifacts/adult/bentoml", dest / "bentoml"))
    spec = json.loads((repo / "artifacts/adult/serving/serving.json").read_text())
    rows = pd.read_parquet(repo / "data/adult/processed/test.parquet")
    return home, spec, rows


def records(rows: pd.DataFrame, spec: dict[str, Any], n: int, offset: int = 0) -> list[dict[str, Any]]:
    """JSON records of ``n`` test rows, with exactly the service's input fields and JSON types."""
    out = []
    for _, row in rows.iloc[offset : offset + n].iterrows():
        rec: dict[str, Any] = {}
        for field in spec["input"]["fields"]:
            value = row[field["name"]]
            if pd.isna(value):
                rec[field["name"]] = None
            elif field["type"] == "int":
                rec[field["name"]] = int(value)
            elif field["type"] == "float":
                rec[field["name"]] = float(value)
            else:
                rec[field["name"]] = str(value)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def serve(
    packaged: tuple[Path, dict[str, Any], pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Start servers with spec patches; they stop when the test module ends."""
    home, spec, _ = packaged
    started: list[Server] = []

    def start(
        patch: dict[str, Any] | None = None, home_override: Path | None = None, log_dir: Path | None = None
    ) -> Server:
        server = Server(home_override or home, spec, tmp_path_factory.mktemp("server"), patch or {}, log_dir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


CHAMPION_ONLY = {"routing": {"mode": "champion_only"}, "input": {"max_batch_records": 50}}


@pytest.fixture(scope="module")
def plain(serve: Any) -> Server:
    """One worker, champion only, batches of at most 50 records."""
    return serve(CHAMPION_ONLY)


@pytest.fixture(scope="module")
def rows(packaged: tuple[Path, dict[str, Any], pd.DataFrame]) -> list[dict[str, Any]]:
    return records(packaged[2], packaged[1], 1200)
