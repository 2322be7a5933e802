"""An ONNX Runtime (CPU) classifier as an HTTP service.

GET  /health   -> {"status": "ok"}
POST /predict  {"features": [[5.1, 3.5, 1.4, 0.2]]} -> {"predictions": ["setosa"]}
"""

import os
from pathlib import Path
from typing import Annotated

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel, Field

# MODEL_PATH may be absolute; a relative one is taken from this file's directory.
MODEL_PATH = Path(__file__).resolve().parent / os.environ.get("MODEL_PATH", "models/model.onnx")

SESSION = ort.InferenceSession(MODEL_PATH, providers=["CPUExecutionProvider"])
INPUT = SESSION.get_inputs()[0].name
CLASSES = SESSION.get_modelmeta().custom_metadata_map["classes"].split(",")

# One row per flower: sepal length, sepal width, petal length, petal width (cm).
Row = Annotated[list[float], Field(min_length=4, max_length=4)]


class PredictRequest(BaseModel):
    features: list[Row] = Field(min_length=1, max_length=1024)


class PredictResponse(BaseModel):
    predictions: list[str]


app = FastAPI(title="onnx")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(req: PredictRequest) -> PredictResponse:
    x = np.asarray(req.features, dtype=np.float32)
    (labels,) = SESSION.run(["label"], {INPUT: x})
    return PredictResponse(predictions=[CLASSES[i] for i in labels])
