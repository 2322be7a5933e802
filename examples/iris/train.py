"""Train the iris classifier and write models/iris.joblib.

Deterministic: the same locked library versions give the same model.
Run from this directory with `uv run train.py`.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

OUT = Path(__file__).resolve().parent / "models" / "iris.joblib"


def main() -> None:
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.2, random_state=0, stratify=iris.target
    )
    model = LogisticRegression(max_iter=1000, random_state=0)
    model.fit(x_train, y_train)
    print(f"test accuracy: {model.score(x_test, y_test):.3f}")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    # The class names travel with the model so the service needs nothing else.
    joblib.dump({"model": model, "classes": [str(c) for c in iris.target_names]}, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
