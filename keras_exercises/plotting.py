"""The figures: the per-exercise evaluation figure and the MC variance histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_exercises.runtime.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # stages run headless
    import matplotlib.pyplot as plt

    return plt


def evaluation_figure(
    confusion: np.ndarray, history: dict[str, list[float]], best_epoch: int, title: str
):
    """Confusion matrix (annotated counts) beside the loss curves per epoch."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, (ax_cm, ax_loss) = plt.subplots(1, 2, figsize=(12, 5))
    ConfusionMatrixDisplay(confusion, display_labels=range(len(confusion))).plot(
        ax=ax_cm, colorbar=False, values_format="d"
    )
    ax_cm.set_title("Test confusion matrix")
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax_loss.plot(epochs, history["loss"], marker="o", label="training loss")
    for key, label in (
        ("val_loss", "validation loss"),
        ("epoch_test_loss", "test loss (recorded only)"),
    ):
        if key in history:
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    if best_epoch < len(epochs):
        ax_loss.axvline(best_epoch, color="grey", linestyle=":", label="weights kept (early stop)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss per epoch")
    ax_loss.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def variance_histogram(per_sample_variance: np.ndarray, title: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist(per_sample_variance, bins=30, color="tab:purple")
    ax.axvline(per_sample_variance.mean(), color="black", linestyle="--", label="mean")
    ax.set_xlabel("predictive variance (across passes, mean over classes)")
    ax.set_ylabel("test samples")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> None:
    """PNG without a software/version stamp, so equal figures give equal bytes."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
