"""The sweep's final table reads as the report does: answers printed as the report prints
them, and each difference the one a reader expects (the point's answer less the launching
commit's, however many seeds each ran), with which seeds the paired test had."""

from __future__ import annotations

from keras_exercises.comparison import Comparison
from keras_exercises.sweep.grid import GridPoint
from keras_exercises.sweep.results import PointResult, differences, results_table


def test_five_seeds_against_one_read_as_the_difference_of_the_answers():
    # the case: five seeds, the launching commit one; seed 42 paired, the same
    answers = {"Q1.1": 0.88, "Q6.3": 0.00412}
    launched = {"Q1.1": 0.895, "Q6.3": 0.00391}
    rows = [
        Comparison("Q1.1", 42, 0.895, 0.895, 0.0, 1.0, "McNemar exact", "within noise"),
        Comparison("Q6.3", 42, 0.00391, 0.00391, 0.0, 1.0, "paired bootstrap", "within noise"),
    ]
    found = differences(answers, launched, rows)
    assert found["Q1.1"][0] == 0.88 - 0.895 and found["Q1.1"][1] is False
    assert found["Q6.3"][0] == 0.00412 - 0.00391

    point = GridPoint("s-1", ("seeds=[42,43,44,45,46]",))
    note = "seeds 43, 44, 45, 46 only in s-1"
    table = results_table([PointResult(point, "done", "", note, answers, found)])
    row, overrides, said = table.splitlines()[1:4]
    assert "88.00% (-1.5 pts)" in row
    assert "0.004 (+0.0002)" in row  # Q6.3 to three decimals, as the report; not "0"
    assert overrides.strip() == "seeds=[42,43,44,45,46]"
    assert said.strip() == f"{note}; the paired test (*) covers the seeds both ran"


def test_a_difference_beyond_noise_is_starred():
    beyond = Comparison("Q1.1", 42, 0.5, 0.9, 0.4, 0.001, "McNemar exact", "beyond noise")
    found = differences({"Q1.1": 0.9}, {"Q1.1": 0.5}, [beyond])
    table = results_table(
        [PointResult(GridPoint("g-1", ()), "done", answers={"Q1.1": 0.9}, differences=found)]
    )
    assert "90.00% (+40.0 pts*)" in table.splitlines()[1]
