"""Run the whole GPU test suite (`pytest -m cuda`, one process per test file, several files at once, each bounded in
time) and write the record that gates resolving an issue: benchmarks/results/<gpu>_tests.json.

Record: {"commit", "date", "gpu", "torch", "triton", "totals": {passed, failed, errors, skipped, timed_out, files},
"files": {"tests/test_x.py": {passed, failed, errors, skipped, timed_out, seconds, failures: [test ids]}}}. A file that
runs past --timeout, or past the suite's --deadline, or that the deadline leaves no time to start, counts as timed out
(and failed); the record is always written. tests/test_gpu_record.py (CPU CI) checks the committed record.

    python benchmarks/run_gpu_tests.py [--jobs 4] [--timeout 300] [--deadline 450] [FILE ...]   # GPU machine, repo root
"""
import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from records import results_path, run_meta  # noqa: E402

CUDA_MARK = re.compile(r"pytest\.mark\.cuda|mark\.cuda\b|cuda = pytest\.mark")


def gpu_test_files(root: Path = ROOT) -> list[str]:
    """Every tests/test_*.py that marks tests `cuda` (repo-relative paths, sorted)."""
    return sorted(str(p.relative_to(root)) for p in (root / "tests").glob("test_*.py") if CUDA_MARK.search(p.read_text()))


def parse_junit(path: Path) -> dict:
    """passed / failed / errors / skipped counts and the failing test ids of one junit xml file."""
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failures = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                if case.find("failure") is not None or case.find("error") is not None]
    return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": counts["failures"], "errors": counts["errors"], "skipped": counts["skipped"],
            "failures": failures}


MIN_START_S = 10  # a file is started only with at least this many seconds left before the deadline


def run_file(test_file: str, timeout: float, log_dir: Path, deadline_at: float = float("inf")) -> dict:
    """One pytest process (group) for one file, cut at min(timeout, the time left before deadline_at on
    time.monotonic()); its junit xml, log and wall time."""
    name = Path(test_file).stem
    junit, log = log_dir / f"{name}.xml", log_dir / f"{name}.log"
    start = time.monotonic()
    limit = min(timeout, deadline_at - start)
    timed_out = limit < MIN_START_S
    if not timed_out:
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "pytest", "-m", "cuda", test_file, "-q", "-p",
                                     "no:cacheprovider", f"--junitxml={junit}"], cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # pytest and the compile workers it started
                proc.wait()
                timed_out = True
    seconds = round(time.monotonic() - start, 1)
    if timed_out or not junit.exists():
        why = "timed out" if seconds else "not started before the deadline"
        return {"passed": 0, "failed": 1, "errors": 0, "skipped": 0, "timed_out": timed_out, "seconds": seconds,
                "failures": [f"{test_file}: {why if timed_out else 'no junit report (crashed)'}"]}
    return {**parse_junit(junit), "timed_out": False, "seconds": seconds}


def record(results: dict[str, dict]) -> dict:
    totals = {key: sum(r[key] for r in results.values()) for key in ("passed", "failed", "errors", "skipped")}
    totals["timed_out"] = sum(r["timed_out"] for r in results.values())
    totals["files"] = len(results)
    meta = run_meta()
    return {"commit": meta["commit"], "date": meta["date"], "gpu": meta["gpu"], "torch": meta["torch"],
            "triton": meta["triton"], "totals": totals, "files": dict(sorted(results.items()))}


def record_path(results_dir=None) -> Path:
    """benchmarks/results/<gpu>_tests.json (h200_tests.json on an H200)."""
    path = results_path(directory=results_dir)
    return path.with_name(path.stem + "_tests.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="test files (default: every file with cuda tests)")
    parser.add_argument("--jobs", type=int, default=4, help="test files run at once")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per file")
    parser.add_argument("--deadline", type=float, default=450, help="seconds for the whole suite (default 450)")
    parser.add_argument("--results-dir", default=None, help="where the record goes (default benchmarks/results)")
    parser.add_argument("--log-dir", default=None, help="per-file logs and junit xml (default: a temporary folder)")
    args = parser.parse_args(argv)
    files = args.files or gpu_test_files()
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="qtorch_gpu_tests_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    deadline_at = time.monotonic() + args.deadline
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {f: pool.submit(run_file, f, args.timeout, log_dir, deadline_at) for f in files}
        results = {f: fut.result() for f, fut in futures.items()}
    rec = record(results)
    path = record_path(args.results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"{'file':<40} {'passed':>6} {'failed':>6} {'errors':>6} {'skipped':>7} {'seconds':>8}")
    for f, r in rec["files"].items():
        flag = " TIMEOUT" if r["timed_out"] else ""
        print(f"{f:<40} {r['passed']:>6} {r['failed']:>6} {r['errors']:>6} {r['skipped']:>7} {r['seconds']:>8}{flag}")
        for failure in r["failures"][:10]:
            print(f"    FAILED {failure}")
    t = rec["totals"]
    print(f"{rec['gpu']} {rec['commit']}: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
          f"{t['skipped']} skipped, {t['timed_out']} timed out -> {path}")
    return 0 if t["failed"] + t["errors"] + t["timed_out"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
