"""Where a cold `dvc repro` spends its time: per stage, start-up (the interpreter and
every module loaded), compute (Keras at work), tracking (MLflow) and the rest (files,
figures, models built); for the pipeline, the same summed, plus DVC's own time between stages."""

from __future__ import annotations

PARTS = ("startup_s", "compute_s", "tracking_s", "rest_s")
TRACKING_PER_TRAINING_STAGE_S = 1.0  # on the local store
NON_COMPUTE_SHARE = 0.35
# the parts of a cold run, as benchmarks/results/latest.md names them, in its order
PART_LABELS = {
    "compute_s": "compute (fit, evaluate, predict, MC passes, embedding)",
    "startup_s": "start-up (interpreter, imports)",
    "tracking_s": "tracking (connecting, logging, registering)",
    "rest_s": "rest in the stages (reading and writing files, figures, building models)",
    "dvc_s": "rest between the stages (DVC)",
}


def cold_run_parts(stages: list[dict], full_s: float) -> dict[str, float]:
    """Each part summed over the stages of one cold run; `dvc_s` is the run's wall time
    that no stage process accounts for (DVC checking, hashing and caching between them)."""
    parts = {part: sum(stage[part] for stage in stages) for part in PARTS}
    parts["dvc_s"] = full_s - sum(stage["wall_s"] for stage in stages)
    return parts


def is_training(stage: dict) -> bool:
    return stage["stage"].split()[0] == "train"
