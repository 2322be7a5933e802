"""Iris classifier as an HTTP service.

GET  /health   -> {"status": "ok"}
POST /predict  {"features": [[5.1, 3.5, 1.4, 0.2]]} -> {"predictions": ["setosa"]}
"""

import os
from pathlib import Path
from typing import Annotated

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field

# MODEL_PATH may be absolute; a relative one is taken from this file's directory.
MODEL_PATH = Path(__file__).resolve().parent / os.environ.get("MODEL_PATH", "models/iris.joblib")

_bundle = joblib.load(MODEL_PATH)
MODEL = _bundle["model"]
CLASSES: list[str] = list(_bundle["classes"])

# One row per flower: sepal length, sepal width, petal length, petal width (cm).
Row = Annotated[list[float], Field(min_length=4, max_length=4)]


class PredictRequest(BaseModel):
    features: list[Row] = Field(min_length=1, max_length=1024)


class PredictResponse(BaseModel):
    predictions: list[str]


app = FastAPI(title="iris")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(req: PredictRequest) -> PredictResponse:
    x = np.asarray(req.features, dtype=np.float64)
    return PredictResponse(predictions=[CLASSES[i] for i in MODEL.predict(x)])
