"""The committed GPU-suite record (benchmarks/results/h200_tests.json, written on the H200 by
benchmarks/run_gpu_tests.py) gates landing: it parses, covers every test file with cuda tests, shows no failure,
error or time-out, and was taken at a commit after which nothing changed that a GPU test could see: only results,
prose (*.md), test files without cuda tests, and GPU test files whose entry in the record carries its own later
"commit" (that file alone re-run after a change to it) with no change since that commit."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "benchmarks" / "results" / "h200_tests.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_gpu_tests import gpu_test_files, parse_junit  # noqa: E402


def _record() -> dict:
    assert RECORD.exists(), f"{RECORD.relative_to(ROOT)} is missing: run benchmarks/run_gpu_tests.py on the H200"
    return json.loads(RECORD.read_text())


def test_record_has_the_fields_and_zero_failures():
    rec = _record()
    for key in ("commit", "date", "gpu", "torch", "triton", "totals", "files"):
        assert key in rec, key
    assert "H200" in rec["gpu"]
    for name, r in rec["files"].items():
        assert r["failed"] == 0 and r["errors"] == 0 and not r["timed_out"], (name, r["failures"])
    t = rec["totals"]
    assert t["failed"] == t["errors"] == t["timed_out"] == 0 and t["passed"] > 0


def test_record_covers_every_gpu_test_file():
    assert set(gpu_test_files()) <= set(_record()["files"])


def _changed_since(commit: str) -> list[str]:
    try:
        return subprocess.run(["git", "diff", "--name-only", commit, "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot compare the record's commit {commit} with HEAD: {exc}")


def test_record_is_fresh():
    """Nothing a GPU test could see changed after the commit the record measured (see the module docstring)."""
    rec = _record()
    commit, gpu_files = rec["commit"], set(gpu_test_files())
    rerun = {name: r["commit"] for name, r in rec["files"].items() if r.get("commit", commit) != commit}
    for name, own in rerun.items():
        assert name not in _changed_since(own), f"{name} changed since its own GPU run at {own}"

    def seen_by_gpu_tests(path: str) -> bool:
        if path.startswith("benchmarks/results/") or path.endswith(".md") or path in rerun:
            return False
        return not (path.startswith("tests/test_") and path.endswith(".py") and path not in gpu_files)

    stale = [f for f in _changed_since(commit) if seen_by_gpu_tests(f)]
    assert not stale, f"changed since the GPU suite ran at {commit} (rerun benchmarks/run_gpu_tests.py): {stale}"


def test_junit_parsing(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="5" failures="1" errors="1" skipped="1" time="1.0">'
                   '<testcase classname="tests.test_a" name="ok"/><testcase classname="tests.test_a" name="bad">'
                   '<failure message="x"/></testcase><testcase classname="tests.test_a" name="err"><error/></testcase>'
                   '</testsuite></testsuites>')
    assert parse_junit(xml) == {"passed": 2, "failed": 1, "errors": 1, "skipped": 1,
                                "failures": ["tests.test_a::bad", "tests.test_a::err"]}
