"""The test servers' own helpers: a server restarted on its port gets it back, and one that
exits says why."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import QUIET_PORTS_FROM, free_port, wait_until_up


def test_a_servers_port_is_none_the_kernel_hands_out_by_itself():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(QUIET_PORTS_FROM <= port < low for port in ports)
    assert len(ports) > 1  # drawn at random, not the first free one every time


def test_a_server_that_exits_while_starting_says_what_its_log_ends_with(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("starting\nERROR:    [Errno 98] Address already in use\n")
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    with pytest.raises(RuntimeError, match=r"(?s)exited with 0; its log ends:\n.*Errno 98"):
        wait_until_up(f"http://127.0.0.1:{free_port()}", process, "mlflow server", log=log)
