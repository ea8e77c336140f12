"""The committed GPU-suite record (benchmarks/results/h200_tests.json, written on the H200 by
benchmarks/run_gpu_tests.py) gates landing: it parses, covers every test file with cuda tests, shows no failure,
error or time-out, and was taken at a commit after which nothing changed that a GPU test could see: only results,
prose (*.md), test files without cuda tests, GPU test files whose entry in the record carries its own later
"commit" (that file alone re-run after a change to it) with no change since that commit, and GPU test files whose
change lies entirely in test functions not marked cuda (what a GPU run of the file executes, compared as syntax
trees, is unchanged)."""
import ast
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


def _gpu_visible(source: str) -> str:
    """The part of a test module that a GPU run (pytest -m cuda) executes, as a syntax-tree dump: the module without
    its test functions that are not marked cuda (the whole module when it is marked cuda as a whole)."""
    tree = ast.parse(source)
    module_marked = any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
                        and "cuda" in ast.unparse(node.value) for node in tree.body)
    if not module_marked:
        tree.body = [node for node in tree.body
                     if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                             and not any("cuda" in ast.unparse(d) for d in node.decorator_list))]
    return ast.dump(tree)


def _only_cpu_tests_changed(path: str, commit: str) -> bool:
    try:
        old = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False  # new since the record: it must be in the record (test_record_covers_every_gpu_test_file)
    return _gpu_visible(old) == _gpu_visible((ROOT / path).read_text())


def test_gpu_visible_part_ignores_cpu_tests_only():
    mark = "pytest.mark." + "cuda"  # split: this file has no GPU tests (run_gpu_tests.CUDA_MARK)
    base = f"import pytest\nX = 1\n\n@{mark}\ndef test_g():\n    assert X\n\ndef test_c():\n    assert 1\n"
    assert _gpu_visible(base) == _gpu_visible(base.replace("assert 1", "assert 2 > 1"))  # a CPU test edited
    assert _gpu_visible(base) != _gpu_visible(base.replace("X = 1", "X = 2"))  # module code the GPU test reads
    assert _gpu_visible(base) != _gpu_visible(base.replace("assert X", "assert not X"))  # the GPU test itself
    marked = f"import pytest\npytestmark = {mark}\n\ndef test_c():\n    assert 1\n"
    assert _gpu_visible(marked) != _gpu_visible(marked.replace("assert 1", "assert 2"))  # every test is a GPU test


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
        if path.startswith("tests/test_") and path.endswith(".py"):
            return path in gpu_files and not _only_cpu_tests_changed(path, commit)
        return True

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
