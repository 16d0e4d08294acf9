"""What a user might write instead of the BentoML service: a minimal Starlette app serving the same model.

Run: ``BENCH_MODEL_DIR=<artifact folder> uvicorn benchmarks.plain_app:app --host 127.0.0.1 --port N``. No input
validation, routing, metrics or prediction log: the floor of HTTP serving in Python, for comparison.
"""

from __future__ import annotations

import os

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models.predictor import load_predictor

MODEL = load_predictor(os.environ["BENCH_MODEL_DIR"])


async def predict(request: Request) -> JSONResponse:
    body = await request.json()
    score = float(MODEL.predict_proba(pd.DataFrame([body["record"]]))[0])
    return JSONResponse({"score": score, "decision": int(score >= 0.5)})


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/livez", livez)])
