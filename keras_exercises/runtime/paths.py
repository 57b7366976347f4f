"""Where each stage reads and writes; dvc.yaml wires the same paths."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The user's checkout, also from inside `dvc exp run --temp` / `--queue` copies.

    Those run in <repo>/.dvc/tmp/exps/<tmp>/; their runs and mirror paths belong to the
    user's checkout.
    """
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def from_project(path: str | Path) -> Path:
    """A user-given path (mirror, weights file): relative ones start at the project root."""
    return project_root() / path


def raw_data(dataset: str) -> Path:
    return Path("data/raw") / f"{dataset}.npz"


def raw_provenance(dataset: str) -> Path:
    return Path("data/raw") / f"{dataset}.json"


def prepared_data(exercise: str) -> Path:
    return Path("data/prepared") / f"{exercise}.npz"


def embeddings(exercise: str) -> Path:
    return Path("data/embeddings") / f"{exercise}.npz"


def exercise_output(exercise: str, seed: int, name: str) -> Path:
    """outputs/<exercise>/seed<seed>/<name>: model.keras, metrics.json, run.json, ..."""
    return Path("outputs") / exercise / f"seed{seed}" / name


REPORTS = Path("reports")

# The validate stage's output: the same text for every valid params.yaml, so it orders the
# pipeline (every stage depends on it) without ever making a stage rerun.
PARAMS_CHECK = Path("outputs/params_check.txt")
