"""benchmarks/run_gpu_tests.py's bounds on CPU: a file cut at the suite's deadline is killed with the processes it
started and counts as timed out; a file the deadline leaves no time for is not started and counts as timed out."""
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_gpu_tests import MIN_START_S, run_file  # noqa: E402

HANGS = """
import subprocess, sys, time, pytest
@pytest.mark.CUDA
def test_hangs():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open({pid_file!r}, "w").write(str(child.pid))
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a killed child not yet reaped by its (dead) parent is a zombie
        return stat.read().split()[2] != "Z"


def test_a_file_cut_at_the_deadline_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    test_file = tmp_path / "test_hangs.py"
    test_file.write_text(HANGS.format(pid_file=str(pid_file)).replace("CUDA", "cuda"))
    result = run_file(str(test_file), timeout=300, log_dir=tmp_path, deadline_at=time.monotonic() + MIN_START_S + 5)
    assert result["timed_out"] is True and result["failed"] == 1, result
    assert MIN_START_S + 5 <= result["seconds"] < MIN_START_S + 30
    assert pid_file.exists(), (tmp_path / "test_hangs.log").read_text()
    time.sleep(0.5)
    assert not _alive(int(pid_file.read_text()))


def test_a_file_the_deadline_leaves_no_time_for_is_not_started(tmp_path):
    result = run_file("tests/test_analysis_gpu.py", timeout=300, log_dir=tmp_path, deadline_at=time.monotonic() + 1)
    assert result["timed_out"] is True and result["failed"] == 1 and result["seconds"] < 1
    assert "not started" in result["failures"][0]
    assert not (tmp_path / "test_analysis_gpu.log").exists()
