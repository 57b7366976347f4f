"""The CSV tables `dvc plots` draws (dvc.yaml's plots section): per-epoch curves,
test predictions for the confusion matrix, per-sample MC Dropout predictions and variance,
the reliability diagram's bins. `keras-exercises compare` reads the per-sample ones too."""

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


def mc_predictions_csv(actual, predicted, per_sample_variance: np.ndarray) -> str:
    return "sample,actual,predicted,variance\n" + "".join(
        f"{i},{a},{p},{v:.9g}\n"
        for i, (a, p, v) in enumerate(zip(actual, predicted, per_sample_variance, strict=True))
    )


def reliability_csv(bins: list[dict]) -> str:
    return "confidence,accuracy,count\n" + "".join(
        f"{b['confidence']:.6f},{b['accuracy']:.6f},{b['count']}\n" for b in bins
    )
