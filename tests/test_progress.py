"""Progress of long work: a few readable lines in a log, a live bar on a terminal."""

import io
import re

from keras_exercises.runtime import progress as progress_module
from keras_exercises.runtime.progress import progress


def test_a_log_gets_a_line_per_quarter_with_rate_and_time_left(capsys):
    with progress("embed 1000 images", 1000) as advance:
        for _ in range(100):
            advance(10)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["embed 1000 images"] * 4
    assert [re.search(r"(\d+)%", line)[1] for line in lines] == ["25", "50", "75", "100"]
    assert all(re.search(r"\d+/1000 \[\d\d:\d\d<\d\d:\d\d, .* images/s\]$", x) for x in lines)


def test_bytes_are_scaled_and_an_unknown_size_gets_one_line_at_the_end(capsys):
    with progress("download cifar-10-python.tar.gz", None, unit="B") as advance:
        for _ in range(3):
            advance(5 * 1024 * 1024)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("download cifar-10-python.tar.gz: ") and "15.0M" in line


def test_a_terminal_gets_tqdms_live_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(progress_module.sys, "stderr", terminal)
    with progress("MC Dropout: 20 passes over 500 images", 10_000) as advance:
        for _ in range(10):
            advance(1000)
    assert "\r" in terminal.getvalue()  # redrawn in place
    assert "10000/10000" in terminal.getvalue()
