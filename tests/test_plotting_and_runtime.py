"""The figures, the all-or-nothing writes and the stages' command lines, on their own."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from keras_exercises.plotting import (
    evaluation_figure,
    reliability_figure,
    save_figure,
    seeds_figure,
    variance_histogram,
)
from keras_exercises.questions import BY_ID
from keras_exercises.runtime.atomic import atomic_path, read_json, write_json
from keras_exercises.runtime.errors import PipelineError
from keras_exercises.runtime.stage_args import stage_args

BINS = [
    {"confidence": 0.3, "accuracy": 0.2, "count": 5},
    {"confidence": 0.9, "accuracy": 0.8, "count": 15},
]


def _texts(fig) -> set[str]:
    found = {fig._suptitle.get_text()} if fig._suptitle else set()
    for ax in fig.axes:
        found |= {ax.get_title(), ax.get_xlabel(), ax.get_ylabel()}
        legend = ax.get_legend()
        if legend:
            found |= {t.get_text() for t in legend.get_texts()}
    return found


def test_the_evaluation_figure_marks_early_stopping_and_the_recorded_test_loss():
    history = {"loss": [1.0, 0.8, 0.7], "epoch_test_loss": [1.1, 0.9, 0.95]}
    fig = evaluation_figure(np.eye(10, dtype=int) * 3, history, 2, "ex6, seed 42")
    texts = _texts(fig)
    assert {"ex6, seed 42", "Test confusion matrix", "Loss per epoch"} <= texts
    assert {"test loss (recorded only)", "weights kept (early stop)"} <= texts


def test_variance_and_reliability_figures_say_what_they_show():
    assert "predictive variance (across passes, mean over classes)" in _texts(
        variance_histogram(np.array([0.01, 0.02, 0.03]), "ex6")
    )
    metrics = {"ece": 0.1, "nll": 1.0, "mc_ece": 0.05, "mc_nll": 0.9}
    texts = _texts(reliability_figure(BINS, BINS, metrics, "ex3"))
    assert "dropout off: ECE 0.100, NLL 1.000" in texts
    assert "MC Dropout average: ECE 0.050, NLL 0.900" in texts


def test_seeds_figure_puts_accuracies_and_variances_on_their_own_axes(tmp_path):
    answers = [
        SimpleNamespace(
            question=BY_ID[qid], seeds=seeds, mean=np.mean(list(seeds.values())), low=lo, high=hi
        )
        for qid, seeds, lo, hi in (
            ("Q1.1", {42: 0.8, 43: 0.9}, 0.75, 0.92),
            ("Q6.3", {42: 0.01, 43: 0.012}, 0.009, 0.013),
        )
    ]
    fig = seeds_figure(answers, 0.95)
    accuracy_axis, variance_axis = fig.axes
    assert [t.get_text() for t in accuracy_axis.get_xticklabels()] == ["Q1.1"]
    assert [t.get_text() for t in variance_axis.get_xticklabels()] == ["Q6.3"]
    assert "Answers over 2 seeds" in fig._suptitle.get_text()
    # the same figure twice is the same bytes: no date or version stamped into the PNG
    save_figure(fig, tmp_path / "a.png")
    save_figure(seeds_figure(answers, 0.95), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed midway")
    assert read_json(target) == {"a": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]
    target.write_text("{not json")
    with pytest.raises(PipelineError, match="is corrupt .* run `dvc repro --force`"):
        read_json(target)
    with pytest.raises(PipelineError, match="is missing: run `dvc repro`"):
        read_json(tmp_path / "nowhere.json")


def test_stage_arguments_are_parsed_by_argparse_and_refused_as_pipeline_errors():
    args = stage_args(["ex1", "42"], "train", item=("ex1", "ex2"), seed=True)
    assert (args.item, args.seed) == ("ex1", 42)
    assert stage_args(["7"], "mc_evaluate", seed=True, optional_items=("ex3", "ex6")).items == []
    assert stage_args(
        ["7", "ex6"], "mc_evaluate", seed=True, optional_items=("ex3", "ex6")
    ).items == ["ex6"]
    for argv, message in (
        (["ex9", "42"], "argument item: invalid choice: 'ex9'"),
        (["ex1", "-1"], "the seed must be a non-negative integer, got '-1'"),
        (["ex1"], "the following arguments are required: SEED"),
        (["ex1", "4x"], "the seed must be a non-negative integer, got '4x'"),
        (["ex1", "42", "more"], "unrecognized arguments: more"),
    ):
        with pytest.raises(PipelineError, match=message):
            stage_args(argv, "train", item=("ex1", "ex2"), seed=True)
    with pytest.raises(PipelineError, match=r"invalid choice: 'ex1' \(choose from ex3, ex6\)"):
        stage_args(["7", "ex1"], "mc_evaluate", seed=True, optional_items=("ex3", "ex6"))
