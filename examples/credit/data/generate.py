"""Regenerate applications.csv, the example's synthetic credit data (deterministic, seed 7).

Run from this folder: `python generate.py`. Only numpy and the standard library are needed.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

ROWS = 2000
rng = np.random.default_rng(7)

rows = []
for i in range(ROWS):
    age = int(rng.integers(18, 76))
    income = float(np.round(rng.lognormal(10.6, 0.45), 2))
    debt = float(np.round(income * rng.uniform(0.0, 0.9), 2))
    months_employed = int(rng.integers(0, 480))
    sex = str(rng.choice(["female", "male"]))
    region = str(rng.choice(["north", "south", "east", "west"], p=[0.3, 0.3, 0.2, 0.2]))
    purpose = str(rng.choice(["car", "home", "education", "business", "other"]))
    late_payments = int(rng.poisson(0.8))
    score = (
        -2.2
        + 3.2 * (debt / income)
        + 0.45 * late_payments
        - 0.012 * (age - 18)
        - 0.002 * months_employed
        + (0.35 if purpose == "business" else 0.0)
        + rng.normal(0, 0.6)
    )
    default = int(1 / (1 + math.exp(-score)) > 0.5)
    if rng.random() < 0.02:
        months_employed_val: int | str = ""
    else:
        months_employed_val = months_employed
    rows.append(
        {
            "applicant_id": 100000 + i,
            "email": f"applicant{i}@example.com",
            "age": age,
            "income": income,
            "debt": debt,
            "months_employed": months_employed_val,
            "late_payments": late_payments,
            "sex": sex,
            "region": region,
            "purpose": purpose,
            "default": default,
        }
    )

out = Path(__file__).with_name("applications.csv")
with out.open("w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(f"wrote {len(rows)} rows to {out.name}")
