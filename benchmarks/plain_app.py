"""What a user might write instead of the BentoML service: a minimal Starlette app serving the same fast path.

Run: ``BENCH_MODEL_DIR=<BentoML model folder> uvicorn benchmarks.plain_app:app --host 127.0.0.1 --port N``. It
loads the model's fast path (``models/fastpath.py``) as the service does; no input validation, routing, metrics
or prediction log: the floor of HTTP serving in Python, for comparison.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models.fastpath import FastScorer

MODEL = FastScorer.load(Path(os.environ["BENCH_MODEL_DIR"]))


def answer(score: float) -> dict[str, float | int]:
    return {"score": score, "decision": int(score >= 0.5)}


async def predict(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse(answer(float(MODEL.score_records([body["record"]])[0])))


async def predict_batch(request: Request) -> JSONResponse:
    body = await request.json()
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
