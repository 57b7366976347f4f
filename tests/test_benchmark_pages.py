"""The pages under benchmarks/results are their JSON rendered by benchmarks/templates: a
template that names what the results do not hold fails, and a page edited by hand, or left
behind by its JSON, differs."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks import full_size, run, suite_cpu, sweep, team
from benchmarks.pages import duration, render
from benchmarks.run import RESULTS


def results(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def page(name: str) -> str:
    return (RESULTS / f"{name}.md").read_text()


def test_each_results_page_is_its_json_rendered():
    assert run.markdown(results("latest")) == page("latest")
    assert team.markdown(results("team")) == page("team")
    assert suite_cpu.markdown(results("suite_cpu")) == page("suite_cpu")
    measured = results("full_size")
    assert full_size.full_size_table(measured["machine"], measured["rows"]) == page("full_size")
    (date,) = re.findall(r"^Measured (\d{4}-\d\d-\d\d) ", page("sweep"))
    assert sweep.markdown(results("sweep"), date) == page("sweep")


def test_a_value_the_results_do_not_hold_fails_the_page():
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError, match="share_s"):
        team.markdown({k: v for k, v in results("team").items() if k != "share_s"})
    with pytest.raises(UndefinedError):
        render("team.md.j2", r=results("team"))  # `change` not given


@pytest.mark.parametrize(
    "seconds, shown", [(42.4, "42 s"), (119.4, "119 s"), (1020, "17 min"), (9000, "2.5 h")]
)
def test_long_times_read_in_the_unit_that_suits_them(seconds, shown):
    assert duration(seconds) == shown
