"""The CSV tables `dvc plots` draws (dvc.yaml's plots section): per-epoch curves,
test predictions for the confusion matrix, per-sample MC Dropout variance."""

from __future__ import annotations

import csv
import io

import numpy as np


def history_csv(history: dict[str, list[float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = sorted(history)
    writer.writerow(["epoch", *keys])
    for epoch, row in enumerate(zip(*(history[k] for k in keys), strict=True), start=1):
        writer.writerow([epoch, *row])
    return out.getvalue()


def predictions_csv(actual, predicted) -> str:
    return "actual,predicted\n" + "".join(
        f"{a},{p}\n" for a, p in zip(actual, predicted, strict=True)
    )


def variance_csv(per_sample_variance: np.ndarray) -> str:
    return "sample,variance\n" + "".join(
        f"{i},{v:.8f}\n" for i, v in enumerate(per_sample_variance)
    )
