"""Suite `serving`: the BentoML service against the in-process floor and a minimal Starlette/uvicorn app.

All three serve the packaged champion, each logging every request (BentoML's access log, uvicorn's default
access log). The BentoML service runs the built bento as `make serve` does (`python -m services.serve`, one worker,
champion-only routing so every request hits the same model as the others); the plain app is
`benchmarks/plain_app.py` under uvicorn (one worker). The floor is `predict_proba` on a one-row frame in this
process. Sequential latency: one request at a time, taking the paths in turn (floor, BentoML /predict,
/predict_batch, plain app) so that all see the same machine; the p50 ratio is the median of the per-repeat ratios. Concurrency: N asyncio clients (httpx, one
connection each) send single-record requests back to back for a fixed count; "batched" posts each record to
/predict_batch, where BentoML's adaptive batching merges concurrent requests; "unbatched" posts to /predict.
Each configuration runs once per repeat; the tables show medians over the repeats. RSS is the resident memory of each server worker
process after the load. Client and servers share this machine's cores. Contention: two servers, native thread pools of 1
(serving.native_threads) and of one per core (the libraries' default), answer sequential single-record requests in
turn, first on a quiet machine, then beside one busy process. Overload: 16 and 32 clients post 1,000-record batches
at once to a server with the packaged spec; every answer must be 200 or 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil

from models.predictor import load_predictor
from pipelines.core.paths import SystemPaths
from pipelines.core.workspace import ROOT, tool_env

SYSTEM = "adult"  # the system whose bento is measured
PATHS = SystemPaths(SYSTEM)

LEVELS = (1, 8, 32)
REQUESTS_PER_CLIENT = {1: 200, 8: 60, 32: 25}
SEQUENTIAL = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, cmd: list[str], env: dict[str, str], url: str, log: Path) -> None:
        self.url = url
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/livez", timeout=2).status_code == 200 and self._ready():
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"{' '.join(cmd)} did not start:\n{log.read_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code in (200, 404)
        except httpx.TransportError:
            return False

    def worker_rss_mib(self) -> list[float]:
        """RSS of the processes that serve requests (the leaves of the process tree)."""
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        leaves = [p for p in procs if not p.children()] or [root]
        return [p.memory_info().rss / 2**20 for p in leaves]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def load(url: str, path: str, payloads: list[Any], clients: int, per_client: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0

    async def client(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(
            base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)
        ) as http:
            for j in range(per_client):
                body = payloads[(i * per_client + j) % len(payloads)]
                start = time.perf_counter()
                try:
                    response = await http.post(path, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(ms),
        "errors": errors,
        "throughput": len(ms) / elapsed,
        "p50_ms": pct(ms, 50),
        "p95_ms": pct(ms, 95),
        "p99_ms": pct(ms, 99),
    }


def interleaved(
    targets: dict[str, tuple[str, str, list[Any]]], frames: list[pd.DataFrame], predictor: Any
) -> dict[str, dict[str, float]]:
    """Sequential single-row latency of every path, one request each in turn, so all see the same machine."""
    clients = {label: httpx.Client(base_url=url, timeout=60) for label, (url, _, _) in targets.items()}
    calls: dict[str, Callable[[int], object]] = {
        "floor": lambda i: predictor.predict_proba(frames[i % len(frames)])
    }
    for label, (_, path, payloads) in targets.items():

        def post(i: int, h: httpx.Client = clients[label], p: str = path, b: list[Any] = payloads) -> object:
            return h.post(p, json=b[i % len(b)])

        calls[label] = post
    times: dict[str, list[float]] = {label: [] for label in calls}
    try:
        for i in range(20 + SEQUENTIAL):
            for label, call in calls.items():
                start = time.perf_counter()
                call(i)
                if i >= 20:
                    times[label].append((time.perf_counter() - start) * 1000)
    finally:
        for client in clients.values():
            client.close()
    return {
        label: {"p50_ms": pct(t, 50), "p95_ms": pct(t, 95), "p99_ms": pct(t, 99)}
        for label, t in times.items()
    }


def med(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def launch(home: Path, spec_path: Path, spec: dict[str, Any], workdir: Path, system: str = SYSTEM) -> Proc:
    """The bento served the way `make serve` serves it (services/serve.py), with ``spec``."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    port = free_port()
    command = [
        sys.executable, "-m", "services.serve", "--system", system, "--store", str(home), "--port", str(port), "--spec",
        str(spec_path), "--log-dir", str(workdir / "predictions"), "--runtime", str(workdir / "runtime"),
    ]  # fmt: skip
    return Proc(command, tool_env(), f"http://127.0.0.1:{port}", workdir / "server.log")


BUSY = "import itertools\nfor _ in itertools.count():\n    pass\n"


def contention(
    home: Path, spec: dict[str, Any], payloads: list[Any], tmpdir: Path, requests: int
) -> dict[str, Any]:
    """Sequential /predict with native pools of 1 thread (the spec) and of one per core (the libraries'
    default), side by side, first on a quiet machine, then beside one busy process (a pure-Python loop)."""
    cores = os.cpu_count() or 2
    servers = {
        f"native_threads={n}": launch(
            home,
            tmpdir / f"contention-{n}.json",
            {
                **spec,
                "workers": 1,
                "native_threads": n,
                "routing": {**spec["routing"], "mode": "champion_only"},
            },
            tmpdir / f"contention-{n}",
        )
        for n in (1, cores)
    }
    out: dict[str, Any] = {"cores": cores, "requests": requests}
    try:
        for phase in ("quiet", "one busy process"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if phase != "quiet" else None
            try:
                time.sleep(0.5)
                clients = {k: httpx.Client(base_url=s.url, timeout=120) for k, s in servers.items()}
                times: dict[str, list[float]] = {k: [] for k in servers}
                for i in range(requests):
                    for label, client in clients.items():
                        start = time.perf_counter()
                        client.post("/predict", json=payloads[i % len(payloads)])
                        times[label].append((time.perf_counter() - start) * 1000)
                for client in clients.values():
                    client.close()
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            out[phase] = {k: {"p50_ms": pct(t, 50), "p99_ms": pct(t, 99)} for k, t in times.items()}
    finally:
        for server in servers.values():
            server.stop()
    return out


def overload(home: Path, spec: dict[str, Any], rows: list[Any], tmpdir: Path) -> dict[str, Any]:
    """16 and 32 clients each posting 1,000-record batches at once: every answer is 200 or a 503 with
    Retry-After; nothing else (the spec's own batching and admission settings)."""
    server = launch(
        home,
        tmpdir / "overload.json",
        {**spec, "routing": {**spec["routing"], "mode": "champion_only"}},
        tmpdir / "overload",
    )
    big = {"records": (rows * (1000 // len(rows) + 1))[:1000]}
    out: dict[Any, Any] = {}
    try:
        for clients in (16, 32):

            async def burst(n: int = clients) -> list[httpx.Response]:
                async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                    return await asyncio.gather(*(http.post("/predict_batch", json=big) for _ in range(n)))

            start = time.perf_counter()
            answers = asyncio.run(burst())
            elapsed = time.perf_counter() - start
            codes = [a.status_code for a in answers]
            out[clients] = {
                "ok": codes.count(200),
                "shed_503": codes.count(503),
                "shed_with_retry_after": sum(
                    a.status_code == 503 and "retry-after" in a.headers for a in answers
                ),
                "other": sum(c not in (200, 503) for c in codes),
                "seconds": elapsed,
            }
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        out["counted_in_metrics"] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(f"{SYSTEM}_shed_requests_total{{")
        )
    finally:
        server.stop()
    return out


def every_system(repeats: int, tmpdir: Path) -> dict[str, Any]:
    """Each system's bento (one worker, champion only): sequential single-record /predict against its floor."""
    import yaml

    out: dict[str, Any] = {}
    for system in yaml.safe_load((ROOT / "params.yaml").read_text())["systems"]:
        paths = SystemPaths(system)
        subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), "repro", f"package@{system}"],
            cwd=ROOT, env=tool_env(), check=True, capture_output=True,
        )  # fmt: skip
        spec = json.loads((ROOT / paths.serving_spec).read_text())
        spec = {**spec, "workers": 1, "routing": {**spec["routing"], "mode": "champion_only"}}
        name, version = spec["champion"]["tag"].split(":")
        predictor = load_predictor(ROOT / paths.bentoml / "models" / name / version)
        test = pd.read_parquet(ROOT / paths.processed / "test.parquet")
        frame = test[[f["name"] for f in spec["input"]["fields"]]].head(300)
        rows = json.loads(frame.astype(object).where(frame.notna(), None).to_json(orient="records"))
        frames = [frame.iloc[[i]] for i in range(len(frame))]
        server = launch(ROOT / paths.bentoml, tmpdir / f"{system}.json", spec, tmpdir / system, system)
        try:
            target = {"bentoml /predict": (server.url, "/predict", [{"record": r} for r in rows])}
            runs = [interleaved(target, frames, predictor) for _ in range(repeats)]
        finally:
            server.stop()
        out[system] = {
            "champion": spec["champion"]["tag"],
            "floor": med([r["floor"] for r in runs]),
            "predict": med([r["bentoml /predict"] for r in runs]),
        }
    return out


def run(repeats: int) -> dict[str, Any]:
    subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "repro", f"package@{SYSTEM}"],
        cwd=ROOT,
        env=tool_env(),
        check=True,
        capture_output=True,
    )
    spec = json.loads((ROOT / PATHS.serving_spec).read_text())
    home = ROOT / PATHS.bentoml
    name, version = spec["champion"]["tag"].split(":")
    model_dir = home / "models" / name / version
    test = pd.read_parquet(ROOT / PATHS.processed / "test.parquet")
    fields = [f["name"] for f in spec["input"]["fields"]]
    frame = test[fields].head(500)
    rows = json.loads(frame.astype(object).where(frame.notna(), None).to_json(orient="records"))
    predictor = load_predictor(model_dir)
    frames = [frame.iloc[[i]] for i in range(len(frame))]

    result: dict[str, Any] = {"system": SYSTEM, "champion": spec["champion"]["tag"], "repeats": repeats}

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        tmpdir = Path(tmp)
        bento_spec = {**spec, "workers": 1, "routing": {**spec["routing"], "mode": "champion_only"}}
        (tmpdir / "serving.json").write_text(json.dumps(bento_spec))
        plain_port = free_port()
        bento = launch(home, tmpdir / "serving.json", bento_spec, tmpdir / "bento")
        plain = Proc(
            [
                str(Path(sys.executable).parent / "uvicorn"),
                "benchmarks.plain_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(plain_port),
                "--workers",
                "1",
            ],
            tool_env(BENCH_MODEL_DIR=str(model_dir)),
            f"http://127.0.0.1:{plain_port}",
            tmpdir / "plain.log",
        )
        try:
            targets = {
                "bentoml /predict": (bento.url, "/predict", [{"record": r} for r in rows]),
                "bentoml /predict_batch (adaptive)": (
                    bento.url,
                    "/predict_batch",
                    [{"records": [r]} for r in rows],
                ),
                "plain Starlette /predict": (plain.url, "/predict", [{"record": r} for r in rows]),
            }
            seq: dict[str, list[dict[str, float]]] = {k: [] for k in ["floor", *targets]}
            conc: dict[str, dict[int, list[dict[str, Any]]]] = {k: {c: [] for c in LEVELS} for k in targets}
            ratios: list[float] = []
            for _ in range(repeats):
                for label, points in interleaved(targets, frames, predictor).items():
                    seq[label].append(points)
                ratios.append(
                    seq["bentoml /predict"][-1]["p50_ms"] / seq["plain Starlette /predict"][-1]["p50_ms"]
                )
                for label, (url, path, payloads) in targets.items():
                    for clients in LEVELS:
                        conc[label][clients].append(
                            asyncio.run(load(url, path, payloads, clients, REQUESTS_PER_CLIENT[clients]))
                        )
            result["floor"] = med(seq.pop("floor"))
            result["sequential"] = {k: med(v) for k, v in seq.items()}
            result["p50_ratio_runs"] = [round(r, 3) for r in ratios]
            result["concurrent"] = {k: {c: med(v) for c, v in levels.items()} for k, levels in conc.items()}
            result["rss_mib"] = {
                "bentoml worker": max(bento.worker_rss_mib()),
                "plain uvicorn": max(plain.worker_rss_mib()),
            }
        finally:
            bento.stop()
            plain.stop()
        result["contention"] = contention(home, spec, [{"record": r} for r in rows], tmpdir, 100)
        result["overload"] = overload(home, spec, rows, tmpdir)
        result["systems"] = every_system(repeats, tmpdir)
    s, c = result["sequential"], result["concurrent"]
    result["ratios"] = {
        "bentoml_p50_over_plain_p50": statistics.median(result["p50_ratio_runs"]),
        "bentoml_p50_over_floor_p50": s["bentoml /predict"]["p50_ms"] / result["floor"]["p50_ms"],
        "batched_over_unbatched_throughput_32": c["bentoml /predict_batch (adaptive)"][32]["throughput"]
        / c["bentoml /predict"][32]["throughput"],
        "errors": sum(r["errors"] for levels in c.values() for r in levels.values()),
    }
    return result
