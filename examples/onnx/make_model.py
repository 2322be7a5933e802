"""Write models/model.onnx: a linear iris classifier built with onnx.helper.

The weights are the coefficients of examples/iris's logistic regression, so both
services give the same answers. Dev-only script: needs `onnx` and `numpy`
(pip install onnx numpy==2.2.6). Deterministic: same output bytes on every run.

Graph: features float[N,4] -> MatMul W[4,3] -> Add b[3] -> scores float[N,3]
       scores -> Softmax -> probabilities float[N,3];  scores -> ArgMax -> label int64[N]
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ["setosa", "versicolor", "virginica"]
# Rows: classes; columns: sepal length, sepal width, petal length, petal width (cm).
COEF = [
    [-0.395475, 0.882801, -2.336062, -1.011311],
    [0.386807, -0.330713, -0.073944, -0.863123],
    [0.008667, -0.552087, 2.410006, 1.874433],
]
INTERCEPT = [9.089840, 2.333284, -11.423124]

OUT = Path(__file__).resolve().parent / "models" / "model.onnx"


def build() -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.array(COEF, dtype=np.float32).T.copy(), "W")
    bias = numpy_helper.from_array(np.array(INTERCEPT, dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["logits"]),
            helper.make_node("Add", ["logits", "b"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
        ],
        "iris_linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
        ],
        initializer=[weights, bias],
    )
    model = helper.make_model(
        graph,
        producer_name="kiln-examples",
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    # The class names travel inside the model; app.py reads them from here.
    helper.set_model_props(model, {"classes": ",".join(CLASSES)})
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(), OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
