"""The monitoring loop against a real `bentoml serve`: replay a scenario over HTTP, collect the log the service
wrote, run the monitor stage through DVC."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run
from tests.service.conftest import CHAMPION_ONLY


@pytest.fixture(scope="module")
def repo(quick_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, _ = quick_repo
    return Path(shutil.copytree(src, tmp_path_factory.mktemp("loop") / "repo", symlinks=True))


def replay_and_monitor(repo: Path, url: str, scenario: str, rows: int) -> dict[str, Any]:
    for folder in ("logs/labels/adult", "logs/metrics/adult"):
        shutil.rmtree(repo / folder, ignore_errors=True)
    out = run(
        ["python", "-m", "pipelines.replay", "--system", "adult", "--scenario", scenario, "--url", url,
         "--rows", str(rows)],
        repo,
    ).stdout  # fmt: skip
    assert f"{rows} requests to {url}" in out
    run(["python", "-m", "pipelines.monitor", "--system", "adult", "--collect"], repo)
    run(["dvc", "repro", "monitor@adult"], repo)
    return json.loads((repo / "reports/adult/monitor/monitor.json").read_text())


def test_a_replayed_shift_through_the_service_is_detected(serve: Any, repo: Path) -> None:
    log_dir = repo / "logs/predictions/adult"
    server = serve(CHAMPION_ONLY, log_dir=log_dir)
    result = replay_and_monitor(repo, server.url, "covariate", 600)
    assert result["rows"] == 600 and result["service"]["requests"] == 600 and result["service"]["errors"] == 0
    assert result["service"]["latency_p95_ms"] > 0
    assert result["decision"] == "retrain" and result["ranking"][0]["check"] == "feature:age", result[
        "reasons"
    ]
    assert result["performance"]["window"]["labelled"] == 600  # every request's label joined by its id
    # a unit change the contract refuses: most requests are 400s, the service's own counts say the feed is broken
    result = replay_and_monitor(repo, server.url, "broken_units", 600)
    assert result["decision"] == "block" and "refused" in result["reasons"][0], result["reasons"]


def test_replay_refuses_a_server_that_is_not_the_service(repo: Path, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        proc = run(
            ["python", "-m", "pipelines.replay", "--system", "adult", "--scenario", "none", "--url", url],
            repo,
            check=False,
        )
    finally:
        server.shutdown()
    assert (
        proc.returncode != 0 and "is not the adult service" in proc.stderr and "Traceback" not in proc.stderr
    )
