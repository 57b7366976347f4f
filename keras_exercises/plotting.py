"""The figures: per exercise and seed the evaluation figure, the MC variance histogram and
the reliability diagram; for the report, every seed's answers with their intervals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from keras_exercises.runtime.atomic import write_bytes


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


def reliability_figure(off: list[dict], mc: list[dict], metrics: dict, title: str):
    """Accuracy against confidence per bin, dropout off and MC average; on the diagonal a
    model is right exactly as often as it is confident. Dot areas follow the bins' sizes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for bins, prefix, label in ((off, "", "dropout off"), (mc, "mc_", "MC Dropout average")):
        sizes = np.array([b["count"] for b in bins], dtype=float)
        (line,) = ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins])
        ax.scatter(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            s=20 + 300 * sizes / sizes.sum(),
            color=line.get_color(),
            label=f"{label}: ECE {metrics[prefix + 'ece']:.3f}, NLL {metrics[prefix + 'nll']:.3f}",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability), mean per bin")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def seeds_figure(answers: list, confidence: float):
    """Every seed's answer per question as dots, the mean and its interval as a bar; the
    accuracies on one axis, Q6.3's variance on its own."""
    plt = _pyplot()
    accuracy_rows = [a for a in answers if a.question.kind.is_accuracy]
    variance_rows = [a for a in answers if not a.question.kind.is_accuracy]
    fig, (ax_acc, ax_var) = plt.subplots(
        1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [len(accuracy_rows), 1.6]}
    )
    for ax, group in ((ax_acc, accuracy_rows), (ax_var, variance_rows)):
        for x, row in enumerate(group):
            values = list(row.seeds.values())
            ax.errorbar(
                x,
                row.mean,
                yerr=[[row.mean - row.low], [row.high - row.mean]],
                fmt="_",
                markersize=18,
                color="black",
                capsize=4,
            )
            offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(x + np.asarray(offsets), values, color="tab:blue", s=18, zorder=3)
        ax.set_xticks(range(len(group)), [r.question.id for r in group])
        ax.set_xlim(-0.6, len(group) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    ax_acc.set_ylabel("accuracy")
    ax_var.set_ylabel("mean predictive variance")
    seeds = len(answers[0].seeds)
    fig.suptitle(
        f"Answers over {seeds} seed{'s' if seeds > 1 else ''}: dots per seed, "
        f"bar = mean and its {confidence:.0%} interval"
    )
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG, rendered once for both the stage's output and its MLflow run,
    without a software/version stamp, so equal figures give equal bytes. Closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return buffer.getvalue()


def save_figure(fig, path: str | Path) -> None:
    write_bytes(path, png_bytes(fig))
