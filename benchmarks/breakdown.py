"""Where a cold `dvc repro` spends its time: per stage, start-up (the interpreter and
every module loaded), compute (Keras at work), tracking (MLflow) and the rest (files,
figures, models built); for the pipeline, the same summed, plus DVC's own time between stages."""

from __future__ import annotations

PARTS = ("startup_s", "compute_s", "tracking_s", "rest_s")
TRACKING_PER_TRAINING_STAGE_S = 1.0  # on the local store
NON_COMPUTE_SHARE = 0.35


def cold_run_parts(stages: list[dict], full_s: float) -> dict[str, float]:
    """Each part summed over the stages of one cold run; `dvc_s` is the run's wall time
    that no stage process accounts for (DVC checking, hashing and caching between them)."""
    parts = {part: sum(stage[part] for stage in stages) for part in PARTS}
    parts["dvc_s"] = full_s - sum(stage["wall_s"] for stage in stages)
    return parts


def target_row(
    label: str, shown: str, value: float, limit: float, unit: str = "", strict: bool = False
) -> str:
    """A table row that states the target once and judges the value against it."""
    met = value < limit if strict else value <= limit
    return (
        f"| {label} | {shown} | {'<' if strict else '≤'} {limit:g}{unit} "
        f"| {'yes' if met else '**no**'} |"
    )


def is_training(stage: dict) -> bool:
    return stage["stage"].split()[0] == "train"


def markdown_lines(summary: dict) -> list[str]:
    parts, full = summary["cold_run_parts"], summary["pipeline_full_s"]
    labels = {
        "compute_s": "compute (fit, evaluate, predict, MC passes, embedding)",
        "startup_s": "start-up (interpreter, imports)",
        "tracking_s": "tracking (connecting, logging, registering)",
        "rest_s": "rest in the stages (reading and writing files, figures, building models)",
        "dvc_s": "rest between the stages (DVC)",
    }
    non_compute = 1 - parts["compute_s"] / full
    tracking = summary["max_training_tracking_s"]
    lines = [
        "",
        "Where a cold `dvc repro` spends its time (medians, summed over its stages):",
        "",
        "| part | seconds | share of the cold run |",
        "|---|---|---|",
    ]
    lines += [f"| {labels[p]} | {parts[p]:.1f} | {parts[p] / full:.0%} |" for p in labels]
    lines += [
        f"| all of it | {full:.1f} | 100% |",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        target_row(
            "everything but compute, share of the cold run",
            f"{non_compute:.0%}",
            non_compute * 100,
            NON_COMPUTE_SHARE * 100,
            "%",
        ),
        target_row(
            "tracking per training stage, most of any (local store)",
            f"{tracking:.2f} s",
            tracking,
            TRACKING_PER_TRAINING_STAGE_S,
            " s",
        ),
        "",
        "| stage | wall (s) | start-up (s) | importing TensorFlow | importing MLflow "
        "| other imports in main | compute (s) | tracking (s) | rest (s) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["stages"]:
        tensorflow = f"{row['import_tensorflow_s']:.2f}" if row["imports_tensorflow"] else "—"
        mlflow = f"{row['import_mlflow_s']:.2f}" if row["imports_mlflow"] else "—"
        lines.append(
            f"| {row['stage']} | {row['wall_s']:.1f} | {row['startup_s']:.2f} | {tensorflow} "
            f"| {mlflow} | {row['import_other_s']:.2f} | {row['compute_s']:.2f} "
            f"| {row['tracking_s']:.2f} | {row['rest_s']:.2f} | {row['peak_rss_mb']:.0f} |"
        )
    return lines
