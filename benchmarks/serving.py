"""Suite `serving`: the fast path against the reference pipeline, and the BentoML service against a plain app.

All HTTP servers serve the packaged champion of Adult (`hgb`) through its fast path (`models/fastpath.py`), one
worker each: the bento as `make serve` runs it (`python -m services.serve`, champion-only routing, with its input
validation, prediction log and metrics); `benchmarks/plain_app.py:app`, a minimal Starlette app under uvicorn (no
validation, log, metrics or access log); and `benchmarks/plain_app.py:duties`, the service's own request handling
(its request guard answering the prediction endpoints, with the same validation, routing, prediction log and
metrics, from the same spec) under plain uvicorn, without BentoML's server: between the bento and "duties" lies
BentoML's server, between "duties" and the plain app the service's duties. In process: the reference pipeline (`predict_proba` on a one-row frame)
and the fast path (`score_records` on one JSON record), in turns of 50 calls each, one native thread. Sequential
latency over HTTP: one request at a time, the paths in turn, so that all see the same machine (a keep-alive
`http.client` connection; its own time counts). Throughput: N aiohttp clients (one connection each) post back to
back for a fixed time; "unbatched" posts one record to /predict, "batched" posts 32 records to /predict_batch,
"adaptive" posts one record to the /predict_batch of a second bento with adaptive batching on
(`serving.batching.adaptive`), which merges concurrent requests. Each configuration runs once per repeat, quiet
and then beside one busy process (a pure-Python loop); tables show medians over the repeats, and ratios are taken
per repeat and then their median. Client and servers share this machine's cores. RSS is each server process's
resident memory after the load, and whether torch is mapped into it. Contention: two bentos, native thread pools
of 1 (serving.native_threads) and one per core, answer sequential requests in turn, quiet and beside one busy
process. Overload: 16 and 32 clients post 1,000-record batches at once to a bento admitting 8 requests at a time
(``serving.overload.max_in_flight``); every answer must be 200 or 503 with Retry-After, and the requests beyond the
limit must be shed.
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

from pipelines.core.paths import SystemPaths
from pipelines.core.workspace import ROOT, tool_env

SYSTEM = "adult"  # the system whose bento is measured
PATHS = SystemPaths(SYSTEM)

LEVELS = (1, 8, 32)
BATCH = 32  # records per request in "batched" mode
SECONDS = 3.0  # per throughput configuration
SEQUENTIAL = 300
IN_PROCESS = 1000
AIMS = {"in_process_p50_ms": 0.2, "http_p50_ms": 3.0, "rows_per_s_32": 1000.0, "service_over_plain": 1.2}


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

    def worker_rss_mib(self, peak: bool = False) -> list[float]:
        """RSS of the processes that serve requests (the leaves of the process tree); with ``peak``, the highest
        it reached (Linux ``VmHWM``)."""
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        leaves = [p for p in procs if not p.children()] or [root]
        if not peak:
            return [p.memory_info().rss / 2**20 for p in leaves]
        out = []
        for p in leaves:
            status = Path(f"/proc/{p.pid}/status").read_text()
            out.append(int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 1024)
        return out

    def torch_loaded(self) -> bool:
        """Whether any server process has torch's shared library mapped (what costs a worker 400 MiB)."""
        root = psutil.Process(self.proc.pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                if any("libtorch" in m.path for m in proc.memory_maps()):
                    return True
            except psutil.Error:
                continue
        return False

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99)}


async def load(
    url: str, path: str, bodies: list[Any], rows_each: int, clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` connections posting ``bodies`` back to back for ``seconds``: rows/s, requests/s, latency."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=clients), timeout=timeout
    ) as http:

        async def client(i: int) -> None:
            nonlocal errors
            j = i
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    async with http.post(path, json=bodies[j % len(bodies)]) as response:
                        await response.read()
                        errors += response.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)
                j += clients

        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return {
        "requests_per_s": len(ms) / elapsed,
        "rows_per_s": len(ms) * rows_each / elapsed,
        "errors": errors,
        **summary(ms),
    }


def in_process(model_dir: Path, frame: pd.DataFrame, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference pipeline and the fast path, one row per call, in turn; and a 1,000-row batch each. Native
    thread pools of one thread, as a service worker has them (serving.native_threads): OpenMP's default pool
    beside a busy process took scikit-learn's single-row p95 above one second here."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _in_process(model_dir, frame, records)


def _in_process(model_dir: Path, frame: pd.DataFrame, records: list[dict[str, Any]]) -> dict[str, Any]:
    from models.fastpath import FastScorer
    from models.predictor import load_predictor

    reference, fast = load_predictor(model_dir), FastScorer.load(model_dir)
    frames = [frame.iloc[[i]] for i in range(len(frame))]
    calls: dict[str, Callable[[int], object]] = {
        "reference pipeline": lambda i: reference.predict_proba(frames[i % len(frames)]),
        "fast path": lambda i: fast.score_records([records[i % len(records)]]),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    # in blocks of 50 calls a path, taking turns: each runs with its own data in cache, as a worker serving one
    # model does (one call each in turn left the fast path's trees evicted by the pipeline's pandas: 0.3 ms, not 0.1)
    for block in range(IN_PROCESS // 50 + 1):
        for label, call in calls.items():
            for i in range(block * 50, block * 50 + 50):
                start = time.perf_counter()
                call(i)
                if block:
                    times[label].append((time.perf_counter() - start) * 1000)
    batch_frame = pd.concat([frame] * (1000 // len(frame) + 1)).head(1000)
    batch_records = (records * (1000 // len(records) + 1))[:1000]
    batch = {}
    whole: dict[str, Callable[[], object]] = {
        "reference pipeline": lambda: reference.predict_proba(batch_frame),
        "fast path": lambda: fast.score_records(batch_records),
    }
    for label, once in whole.items():
        once()
        runs = []
        for _ in range(20):
            start = time.perf_counter()
            once()
            runs.append(time.perf_counter() - start)
        batch[label] = 1000 / statistics.median(runs)
    return {label: summary(t) | {"batch_rows_per_s": batch[label]} for label, t in times.items()}


def sequential(targets: dict[str, tuple[str, str, list[Any]]]) -> dict[str, dict[str, float]]:
    """Sequential requests, one per path in turn, so all see the same machine. The client is the standard
    library's keep-alive ``http.client`` (about 0.1 ms of its own a request; httpx took about 1 ms)."""
    import http.client
    from urllib.parse import urlsplit

    clients = {}
    for label, (url, _, _) in targets.items():
        parts = urlsplit(url)
        clients[label] = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    payloads = {label: [json.dumps(b).encode() for b in bodies] for label, (_, _, bodies) in targets.items()}
    times: dict[str, list[float]] = {label: [] for label in targets}
    errors = dict.fromkeys(targets, 0)
    try:
        for i in range(30 + SEQUENTIAL):
            for label, (_, path, _) in targets.items():
                body = payloads[label][i % len(payloads[label])]
                start = time.perf_counter()
                clients[label].request("POST", path, body=body, headers=headers)
                response = clients[label].getresponse()
                response.read()
                status = response.status
                if i >= 30:
                    times[label].append((time.perf_counter() - start) * 1000)
                    errors[label] += status != 200
    finally:
        for client in clients.values():
            client.close()
    return {label: summary(t) | {"errors": errors[label]} for label, t in times.items()}


BUSY = "import itertools\nfor _ in itertools.count():\n    pass\n"
OVERLOAD_ADMITS = 8  # serving.overload.max_in_flight for the overload bursts (16 and 32 clients exceed it)


def throughput(
    bento: str, plain: str, adaptive: str, duties: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every (load, mode, clients) configuration for the three servers, side by side; adaptive for the bento."""
    single = [{"record": r} for r in rows]
    batches = [{"records": rows[i : i + BATCH]} for i in range(0, len(rows) - BATCH + 1, BATCH)]
    modes: dict[str, tuple[str, list[Any], int]] = {
        "unbatched": ("/predict", single, 1),
        "batched": ("/predict_batch", batches, BATCH),
        "adaptive": ("/predict_batch", [{"records": [r]} for r in rows], 1),
    }
    out: dict[str, Any] = {}
    for phase in ("quiet", "one busy process"):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if phase != "quiet" else None
        try:
            time.sleep(0.5)
            for mode, (path, bodies, each) in modes.items():
                for clients in LEVELS:
                    servers = (
                        {"bentoml": adaptive}
                        if mode == "adaptive"
                        else {"bentoml": bento, "duties": duties, "plain": plain}
                    )
                    for name, url in servers.items():
                        key = f"{phase}|{mode}|{clients}|{name}"
                        out[key] = asyncio.run(load(url, path, bodies, each, clients, SECONDS))
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    return out


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
    """16 and 32 clients each posting 1,000-record batches at once to a worker admitting ``OVERLOAD_ADMITS``:
    every answer is 200 or a 503 with Retry-After, nothing else, and the requests beyond the limit are shed."""
    server = launch(
        home,
        tmpdir / "overload.json",
        {
            **spec,
            "routing": {**spec["routing"], "mode": "champion_only"},
            "overload": {**spec["overload"], "max_in_flight": OVERLOAD_ADMITS},
        },
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
    """Each system's bento (one worker, champion only): sequential /predict and its champion in process."""
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
        frame, rows = sample(paths, spec, 300)
        server = launch(ROOT / paths.bentoml, tmpdir / f"{system}.json", spec, tmpdir / system, system)
        try:
            runs = [
                (
                    in_process(ROOT / paths.bentoml / "models" / name / version, frame, rows),
                    sequential({"bentoml /predict": (server.url, "/predict", [{"record": r} for r in rows])}),
                )
                for _ in range(repeats)
            ]
            rss, torch = max(server.worker_rss_mib()), server.torch_loaded()
        finally:
            server.stop()
        out[system] = {
            "champion": spec["champion"]["tag"],
            "model": spec["champion"]["fast_path"]["info"].get("model"),
            "in_process": {k: med([r[0][k] for r in runs]) for k in runs[0][0]},
            "predict": med([r[1]["bentoml /predict"] for r in runs]),
            "rss_mib": rss,
            "torch_loaded": torch,
        }
    return out


def med(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def sample(paths: SystemPaths, spec: dict[str, Any], n: int) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``n`` test rows as a frame and as the JSON records a client sends."""
    from pipelines.core.parity import records_of

    fields = spec["input"]["fields"]
    test = pd.read_parquet(ROOT / paths.processed / "test.parquet")
    frame = test[[f["name"] for f in fields]].head(n)
    cat = tuple(f["name"] for f in fields if f["type"] == "category")
    num = tuple(f["name"] for f in fields if f["type"] != "category")
    ints = [
        f["name"] for f in fields if f["type"] == "int"
    ]  # the contract's integers travel as JSON integers
    records = records_of(frame, cat, num)
    return frame, [r | {k: None if r[k] is None else int(r[k]) for k in ints} for r in records]


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
    frame, rows = sample(PATHS, spec, 512)
    result: dict[str, Any] = {"system": SYSTEM, "champion": spec["champion"]["tag"], "repeats": repeats}
    result["model"] = spec["champion"]["fast_path"]["info"].get("model")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        tmpdir = Path(tmp)
        bento_spec = {**spec, "workers": 1, "routing": {**spec["routing"], "mode": "champion_only"}}
        bento = launch(home, tmpdir / "serving.json", bento_spec, tmpdir / "bento")
        merging = {**bento_spec, "batching": {**spec["batching"], "adaptive": True}}
        adaptive = launch(home, tmpdir / "adaptive.json", merging, tmpdir / "adaptive")
        duties_spec = {
            **bento_spec,
            "prediction_log": {**spec["prediction_log"], "dir": str(tmpdir / "duties-log")},
        }
        (tmpdir / "duties.json").write_text(json.dumps(duties_spec))
        (tmpdir / "duties-metrics").mkdir()
        duties_port = free_port()
        duties = Proc(
            [
                str(Path(sys.executable).parent / "uvicorn"), "benchmarks.plain_app:duties", "--host", "127.0.0.1",
                "--port", str(duties_port), "--workers", "1", "--no-access-log",
            ],
            tool_env(
                SERVING_CONFIG=str(tmpdir / "duties.json"), BENTOML_HOME=str(home),
                PROMETHEUS_MULTIPROC_DIR=str(tmpdir / "duties-metrics"),
            ),
            f"http://127.0.0.1:{duties_port}",
            tmpdir / "duties.log",
        )  # fmt: skip
        plain_port = free_port()
        plain = Proc(
            [
                str(Path(sys.executable).parent / "uvicorn"), "benchmarks.plain_app:app", "--host", "127.0.0.1",
                "--port", str(plain_port), "--workers", "1", "--no-access-log",
            ],
            tool_env(BENCH_MODEL_DIR=str(model_dir)),
            f"http://127.0.0.1:{plain_port}",
            tmpdir / "plain.log",
        )  # fmt: skip
        try:
            targets: dict[str, tuple[str, str, list[Any]]] = {
                "bentoml /predict": (bento.url, "/predict", [{"record": r} for r in rows]),
                "bentoml /predict_batch (adaptive)": (
                    adaptive.url,
                    "/predict_batch",
                    [{"records": [r]} for r in rows],
                ),
                "service code under plain uvicorn /predict": (
                    duties.url,
                    "/predict",
                    [{"record": r} for r in rows],
                ),
                "plain Starlette /predict": (plain.url, "/predict", [{"record": r} for r in rows]),
            }
            runs = []
            for _ in range(repeats):
                runs.append(
                    {
                        "in_process": in_process(model_dir, frame, rows),
                        "sequential": sequential(targets),
                        "throughput": throughput(bento.url, plain.url, adaptive.url, duties.url, rows),
                    }
                )
            result["rss_mib"] = {
                "bentoml worker (hgb champion and tabular_nn challenger loaded)": max(bento.worker_rss_mib()),
                "bentoml worker, peak during the run": max(bento.worker_rss_mib(peak=True)),
                "service code under plain uvicorn (hgb and tabular_nn loaded)": max(duties.worker_rss_mib()),
                "plain uvicorn (hgb)": max(plain.worker_rss_mib()),
            }
            result["torch_loaded"] = bento.torch_loaded()
        finally:
            bento.stop()
            adaptive.stop()
            duties.stop()
            plain.stop()
        result["contention"] = contention(home, spec, [{"record": r} for r in rows], tmpdir, 100)
        result["overload"] = overload(home, spec, rows, tmpdir)
        result["overload"]["admits"] = OVERLOAD_ADMITS
        result["systems"] = every_system(repeats, tmpdir)
    result["in_process"] = {k: med([r["in_process"][k] for r in runs]) for k in runs[0]["in_process"]}
    result["sequential"] = {k: med([r["sequential"][k] for r in runs]) for k in runs[0]["sequential"]}
    table: dict[str, Any] = {}
    for key in runs[0]["throughput"]:
        phase, mode, clients, name = key.split("|")
        row = table.setdefault(
            f"{phase}|{mode}|{clients}", {"phase": phase, "mode": mode, "clients": int(clients)}
        )
        row[name] = med([r["throughput"][key] for r in runs])
        if name in ("plain", "duties"):  # the service's cost per row, as a ratio per repeat, then the median
            row[f"{name}_over_bentoml_rows_per_s"] = statistics.median(
                r["throughput"][key]["rows_per_s"]
                / r["throughput"][key.replace(f"|{name}", "|bentoml")]["rows_per_s"]
                for r in runs
            )
    result["throughput"] = list(table.values())
    seq = [r["sequential"] for r in runs]
    fast = result["in_process"]["fast path"]
    reference = result["in_process"]["reference pipeline"]
    rows_32 = [t for t in table.values() if t["clients"] == 32 and t["phase"] == "quiet"]
    worst = max(t["plain_over_bentoml_rows_per_s"] for t in table.values() if "plain" in t)
    worst_server = max(t["duties_over_bentoml_rows_per_s"] for t in table.values() if "duties" in t)
    result["ratios"] = {
        "reference_over_fast_p50": reference["p50_ms"] / fast["p50_ms"],
        "bentoml_p50_over_plain_p50": statistics.median(
            s["bentoml /predict"]["p50_ms"] / s["plain Starlette /predict"]["p50_ms"] for s in seq
        ),
        "worst_plain_over_bentoml_rows_per_s": worst,
        "worst_duties_over_bentoml_rows_per_s": worst_server,
        "best_bentoml_rows_per_s_32": max(t["bentoml"]["rows_per_s"] for t in rows_32),
        "errors": sum(
            t[n]["errors"] for t in table.values() for n in ("bentoml", "duties", "plain") if n in t
        )
        + sum(s["errors"] for s in result["sequential"].values()),
    }
    r = result["ratios"]
    result["aims"] = [
        {"aim": "in-process single row, tree champion (fast path p50)", "target": f"<= {AIMS['in_process_p50_ms']} ms",
         "measured": f"{fast['p50_ms']:.3f} ms", "met": fast["p50_ms"] <= AIMS["in_process_p50_ms"]},
        {"aim": "over HTTP, sequential /predict p50", "target": f"<= {AIMS['http_p50_ms']} ms",
         "measured": f"{result['sequential']['bentoml /predict']['p50_ms']:.2f} ms",
         "met": result["sequential"]["bentoml /predict"]["p50_ms"] <= AIMS["http_p50_ms"]},
        {"aim": "scored rows/s at 32 clients (best mode, quiet), 0 errors", "target": f">= {AIMS['rows_per_s_32']:.0f}",
         "measured": f"{r['best_bentoml_rows_per_s_32']:.0f} rows/s, {r['errors']} errors",
         "met": r["best_bentoml_rows_per_s_32"] >= AIMS["rows_per_s_32"] and r["errors"] == 0},
        {"aim": "service within 1.2x of the plain app on every row (rows/s)", "target": f"<= {AIMS['service_over_plain']}x",
         "measured": f"{worst:.2f}x at worst", "met": worst <= AIMS["service_over_plain"]},
        {"aim": "(decomposition) BentoML's server within 1.2x of the same service code under plain uvicorn, every row",
         "target": f"<= {AIMS['service_over_plain']}x", "measured": f"{worst_server:.2f}x at worst",
         "met": worst_server <= AIMS["service_over_plain"]},
    ]  # fmt: skip
    return result
