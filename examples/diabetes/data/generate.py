"""Export scikit-learn's bundled diabetes data set to `diabetes.csv` (deterministic, offline)."""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_diabetes


def main() -> None:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.insert(0, "patient_id", range(1, len(frame) + 1))
    frame["sex"] = frame["sex"].map({1.0: "a", 2.0: "b"})
    frame = frame.rename(columns={"target": "progression"})
    frame.round(6).to_csv(Path(__file__).with_name("diabetes.csv"), index=False)


if __name__ == "__main__":
    main()
