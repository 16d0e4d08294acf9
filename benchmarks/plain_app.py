"""Two servers to compare the BentoML service with, under plain uvicorn.

- ``app``: what a user might write instead of the service, a minimal Starlette app serving the same fast path.
  Run: ``BENCH_MODEL_DIR=<BentoML model folder> uvicorn benchmarks.plain_app:app``. It loads the model's fast path
  (``models/fastpath.py``) as the service does; no input validation, routing, metrics or prediction log: the floor
  of HTTP serving in Python.
- ``duties``: the service's own request handling without BentoML's server: its request guard answering the
  prediction endpoints directly (``services/tabular/endpoints.py``), with the same validation, routing, prediction
  log and metrics, built from the same serving spec. Run: ``SERVING_CONFIG=<spec> BENTOML_HOME=<store>
  PROMETHEUS_MULTIPROC_DIR=<empty folder> uvicorn benchmarks.plain_app:duties``. Between the two plain servers lies
  the cost of the service's duties; between ``duties`` and the bento, the cost of BentoML's server (its middlewares
  and worker).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models.fastpath import FastScorer

MODEL = FastScorer.load(Path(os.environ["BENCH_MODEL_DIR"])) if "BENCH_MODEL_DIR" in os.environ else None


def answer(score: float) -> dict[str, float | int]:
    return {"score": score, "decision": int(score >= 0.5)}


async def predict(request: Request) -> JSONResponse:
    body = await request.json()
    assert MODEL is not None
    return JSONResponse(answer(float(MODEL.score_records([body["record"]])[0])))


async def predict_batch(request: Request) -> JSONResponse:
    body = await request.json()
    assert MODEL is not None
    return JSONResponse([answer(float(s)) for s in MODEL.score_records(body["records"])])


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_batch", predict_batch, methods=["POST"]),
        Route("/livez", livez),
    ]
)


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    """404 for every path but the probes (the guard answers the prediction endpoints)."""
    if scope["type"] != "http":
        return
    status = 200 if scope["path"] in ("/livez", "/readyz") else 404
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def _duties() -> Any:
    """The service's guard and direct endpoints around a 404, with the service instance the spec describes."""
    if "SERVING_CONFIG" not in os.environ:
        return not_found
    from services.tabular import service
    from services.tabular.guard import RequestGuard

    # loads and verifies the models and opens the prediction log (service.INSTANCE)
    service.ModelService.inner()  # type: ignore[attr-defined]
    return RequestGuard(not_found, **(service.GUARD | {"direct": service.DIRECT}))


duties = _duties()
