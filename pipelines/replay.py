"""Replay: production-like windows drawn from held-out data with a controlled shift, sent through the real service.

Usage: ``python -m pipelines.replay --system NAME --scenario NAME [--url URL] [--rows N] [--seed N]``
(``make replay SYSTEM=<name> SCENARIO=<name>``). Each scenario of ``<system>.monitor.replay.scenarios`` is one of:
``none``; ``covariate`` (add a shift to a numeric feature, clipped to the contract); ``category_mix`` (resample so a
category makes up a share); ``label_shift`` (resample to a positive rate); ``concept`` (flip the labels of one
segment); ``scramble`` (labels shuffled: same inputs and base rate, answers no longer follow the inputs); ``nulls`` and ``units`` (a broken feed: a column of nulls, a unit change). Rows come from the test split
(never seen in training or calibration), without replacement when the split is large enough.

Each record is POSTed to ``/predict`` with an ``X-Request-ID``, so the service writes the prediction log the real
way; the matching delayed labels go to ``logs/labels/<system>/`` (time = prediction time + ``label_lag_s``), and a
scrape of the service's ``/metrics`` to ``logs/metrics/<system>/metrics.prom``. ``make monitor`` collects them.
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.errors import ConfigError, PipelineError, stage_main
from pipelines.core.io import PRIVATE_FILE, private_dir, write_json_atomic, write_text_atomic
from pipelines.core.monitor_config import (
    CategoryMix,
    Concept,
    Covariate,
    LabelShift,
    MonitorConfig,
    Nulls,
    Scenario,
    Scramble,
    Units,
)
from pipelines.core.paths import SystemPaths
from pipelines.core.training import read_split

# what the scoring endpoint answers: a score, a request the contract refuses, an overloaded service
ANSWERS = {200, 400, 408, 413, 415, 422, 429, 503}


def _pick(n: int, size: int, rng: np.random.Generator, p: np.ndarray | None = None) -> np.ndarray:
    return rng.choice(n, size=size, replace=p is not None or size > n, p=p)


def _reweighted(mask: np.ndarray, share: float) -> np.ndarray:
    """Sampling probabilities that make the rows in ``mask`` an expected ``share`` of the draw."""
    k = int(mask.sum())
    if k == 0 or k == mask.size:
        raise PipelineError(f"cannot set a share of {share}: the test split has {k} of {mask.size} such rows")
    return np.where(mask, share / k, (1 - share) / (mask.size - k))


def generate(
    test: pd.DataFrame, scenario: Scenario, rows: int, seed: int, dataset: DatasetConfig
) -> tuple[pd.DataFrame, np.ndarray]:
    """A window of ``rows`` records (the test split's columns) and their labels (0/1) under ``scenario``.

    Raises PipelineError when the scenario cannot be drawn from this split (a category absent)."""
    rng = np.random.default_rng(seed)
    label = dataset.target.name
    y_all = test[label].astype(int).to_numpy()
    probs = None
    if isinstance(scenario, CategoryMix):
        mask = (test[scenario.feature].astype("string") == scenario.category).fillna(False).to_numpy()
        probs = _reweighted(mask, scenario.share)
    elif isinstance(scenario, LabelShift):
        probs = _reweighted(y_all == 1, scenario.positive_rate)
    idx = _pick(len(test), rows, rng, probs)
    window = test.iloc[idx].reset_index(drop=True).copy()
    y = y_all[idx].copy()
    if isinstance(scenario, Covariate | Units):
        col = window[scenario.feature].astype(float)
        if isinstance(scenario, Covariate):
            rule = dataset.contract.columns.get(scenario.feature)
            lo = rule.min if rule and rule.min is not None else -math.inf
            hi = rule.max if rule and rule.max is not None else math.inf
            col = (col + scenario.shift).clip(lo, hi)
        else:
            col = col * scenario.factor
        window[scenario.feature] = col.round() if dataset.columns[scenario.feature] == "int" else col
    elif isinstance(scenario, Nulls):
        window[scenario.feature] = None
    elif isinstance(scenario, Concept):
        segment = (window[scenario.feature].astype("string") == scenario.category).fillna(False).to_numpy()
        y = np.where(segment, 1 - y, y)
    elif isinstance(scenario, Scramble):
        y = rng.permutation(y)
    return window, y


def records(window: pd.DataFrame, fields: list[str]) -> list[dict[str, Any]]:
    """JSON-ready request records (missing values as null, integral floats of int columns as ints)."""
    out = []
    for row in window[fields].to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
                rec[k] = None
            elif isinstance(v, np.integer | int) and not isinstance(v, bool):
                rec[k] = int(v)
            elif isinstance(v, float | np.floating):
                f = float(v)
                rec[k] = int(f) if f.is_integer() and abs(f) < 2**53 else f
            else:
                rec[k] = str(v)
        out.append(rec)
    return out


def label_lines(ids: list[str], y: np.ndarray, times: list[datetime], lag_s: float) -> str:
    return "".join(
        json.dumps(
            {"request_id": rid, "label": int(label), "time": (t + timedelta(seconds=lag_s)).isoformat()}
        )
        + "\n"
        for rid, label, t in zip(ids, y, times, strict=True)
    )


def send(url: str, recs: list[dict[str, Any]], ids: list[str], clients: int = 8) -> list[int]:
    """POST each record to ``url``/predict with its request id; the HTTP status of each."""
    import httpx

    def one(args: tuple[dict[str, Any], str]) -> int:
        rec, rid = args
        try:
            r = client.post(f"{url}/predict", json={"record": rec}, headers={"x-request-id": rid})
            return r.status_code
        except httpx.TransportError:
            return 0

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, zip(recs, ids, strict=True)))


def simulate(
    window: pd.DataFrame,
    y: np.ndarray,
    predictor: Any,
    spec: Any,
    ids: list[str],
    start: datetime,
    lag_s: float,
) -> tuple[str, str, dict[str, Any]]:
    """The prediction log, the labels and the service counts that sending ``window`` would give, in process: each
    record goes through the service's own request schema (a record the contract refuses is a 400, not logged),
    the accepted ones are scored by ``predictor`` (the champion). For tests and benchmarks; ``make replay`` goes
    over HTTP. Returns (log text, labels text, {"requests", "rejected", "error_rate"})."""
    from pydantic import ValidationError

    from services.tabular.schema import record_model

    record_cls = record_model(spec.input)
    fields = [f.name for f in spec.input.fields]
    recs = records(window, fields)
    keep: list[int] = []
    for i, rec in enumerate(recs):
        try:
            record_cls.model_validate(rec)
            keep.append(i)
        except ValidationError:
            pass
    logged = set(spec.prediction_log.feature_fields)
    kept = window.iloc[keep].reset_index(drop=True)
    scores = predictor.predict_proba(kept) if keep else np.zeros(0)
    times = [start + timedelta(milliseconds=i) for i in range(len(recs))]
    lines = []
    for j, i in enumerate(keep):
        score = float(scores[j])
        lines.append(
            json.dumps(
                {
                    "request_id": ids[i],
                    "time": times[i].isoformat(timespec="milliseconds"),
                    "model": spec.champion.name,
                    "version": spec.champion.version,
                    "role": "champion",
                    "shadow": False,
                    "score": score,
                    "decision": int(score >= spec.decision_threshold),
                    "features": {k: v for k, v in recs[i].items() if k in logged},
                },
                separators=(",", ":"),
            )
            + "\n"
        )
    labels = label_lines([ids[i] for i in keep], y[keep], [times[i] for i in keep], lag_s)
    rejected = len(recs) - len(keep)
    service = {
        "latency_p95_ms": None,  # not measured in process
        "requests": len(recs),
        "errors": rejected,
        "rejected": rejected,
        "error_rate": rejected / max(len(recs), 1),
    }
    return "".join(lines), labels, service


@stage_main("replay")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--url", help="the running service (default http://127.0.0.1:<serving.port>)")
    parser.add_argument("--rows", type=int, help="default monitor.replay.rows")
    parser.add_argument("--seed", type=int, help="default monitor.replay.seed")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="no service: score in process with the champion and the service's own request schema (demos, CT "
        "without a server); refused requests are counted in logs/metrics/<system>/service.json",
    )
    args = parser.parse_args(argv)
    params = load_system(args.params, args.system)
    cfg = section(params, "monitor", MonitorConfig)
    dataset = section(params, "dataset", DatasetConfig)
    scenarios = cfg.replay.scenarios
    if args.scenario not in scenarios:
        raise ConfigError(
            f"SCENARIO={args.scenario!r} is not a scenario of {args.system}.monitor.replay.scenarios; "
            f"the scenarios are: {', '.join(scenarios)}"
        )
    paths = SystemPaths(args.system)
    rows = cfg.replay.rows if args.rows is None else args.rows
    seed = cfg.replay.seed if args.seed is None else args.seed
    if rows < 1 or seed < 0:
        raise ConfigError(f"ROWS must be at least 1 and the seed at least 0 (got rows {rows}, seed {seed})")
    test = read_split(paths.processed, "test")
    window, y = generate(test, scenarios[args.scenario], rows, seed, dataset)
    fields = list(params["serving"]["prediction_log"]["feature_fields"])
    inputs = [c for c in dataset.feature_columns if c in window.columns]
    url = (args.url or f"http://127.0.0.1:{params['serving']['port']}").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise PipelineError(f"URL={args.url!r}: give the service's address with its scheme, http://host:port")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ids = [f"replay-{args.scenario}-{seed}-{stamp}-{i:07d}" for i in range(rows)]
    times = [datetime.now(UTC)] * rows
    if args.simulate:
        from models.predictor import load_predictor
        from services.tabular.spec import load_spec

        champion = load_predictor(paths.release("champion"))
        spec = load_spec(paths.serving_spec)
        log, label_text, service = simulate(window, y, champion, spec, ids, times[0], cfg.replay.label_lag_s)
        for folder, name, text in (
            (paths.prediction_logs, f"predictions-simulated-{stamp}.jsonl", log),
            (paths.label_logs, f"labels-{args.scenario}-{seed}-{stamp}.jsonl", label_text),
        ):
            private_dir(folder)
            write_text_atomic(folder / name, text, PRIVATE_FILE)
        counts_file = Path("logs/metrics") / args.system / "service.json"
        counts_file.parent.mkdir(parents=True, exist_ok=True)
        if counts_file.is_file():  # counts add up over replays, as a live service's counters do
            before = json.loads(counts_file.read_text(encoding="utf-8"))
            for key in ("requests", "errors", "rejected"):
                service[key] += int(before.get(key, 0))
            service["error_rate"] = service["errors"] / max(service["requests"], 1)
        write_json_atomic(counts_file, service)
        print(
            f"[replay] {args.system}/{args.scenario}: {rows} records scored in process by the champion "
            f"({service['rejected']} refused by the contract) -> {paths.prediction_logs}, {paths.label_logs}"
        )
        return
    import httpx

    try:
        scrape_text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        raise PipelineError(
            f"no request reached {url}: start the service first (make serve SYSTEM={args.system})"
        ) from None
    if f"{args.system}_model_ready" not in scrape_text:  # a gauge every worker sets once its models load
        raise PipelineError(
            f"the server at {url} is not the {args.system} service: its /metrics has no "
            f"{args.system}_model_ready (start it with make serve SYSTEM={args.system}, or give URL=)"
        )
    status = send(url, records(window, inputs), ids)
    ok = [i for i, s in enumerate(status) if s == 200]
    labels = paths.label_logs / f"labels-{args.scenario}-{seed}-{stamp}.jsonl"
    private_dir(labels.parent)
    if ok:  # the service logged every answer it gave: their labels go with them, whatever happened after
        write_text_atomic(
            labels,
            label_lines([ids[i] for i in ok], y[ok], [times[i] for i in ok], cfg.replay.label_lag_s),
            PRIVATE_FILE,
        )
    unexpected = sorted({s for s in status if s not in ANSWERS})
    if unexpected:
        lost = sum(s in unexpected for s in status)
        what = ", ".join("no answer (the connection failed)" if s == 0 else f"status {s}" for s in unexpected)
        raise PipelineError(
            f"{url} gave {what} to {lost} of {rows} requests: the service stopped or is not this service. "
            f"The {len(ok)} answered requests are in its log"
            + (f" and their labels in {labels}" if ok else "")
            + "; run the scenario again to fill the window."
        )
    scrape = Path("logs/metrics") / args.system / "metrics.prom"
    scrape.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(scrape, httpx.get(f"{url}/metrics", timeout=10).text)
    counts = {s: status.count(s) for s in sorted(set(status))}
    print(
        f"[replay] {args.system}/{args.scenario}: {rows} requests to {url} (status {counts}); "
        f"{len(ok)} labels -> {labels}; /metrics -> {scrape}; fields logged: {len(fields)}"
    )


if __name__ == "__main__":
    main()
