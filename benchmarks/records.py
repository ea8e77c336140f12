"""Result records shared by the benchmarks: run metadata and merging into benchmarks/results/<gpu>.json.

Format: /work/shared/BENCHMARK_RESULTS.md. A new run replaces its own benchmarks' records and keeps the others.
"""
import datetime
import json
import os
import pathlib
import subprocess

import torch

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """The commit measured: $QTORCH_COMMIT (or $COMMIT) when set — the GPU machine gets the tree without .git."""
    for var in ("QTORCH_COMMIT", "COMMIT"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device=None) -> str:
    """'NVIDIA H200' on a GPU, 'cpu' otherwise."""
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def results_path(device=None, directory=None) -> pathlib.Path:
    """<directory>/<gpu>.json, the GPU named in lower case without the vendor ('NVIDIA H200' -> h200.json)."""
    words = device_name(device).lower().replace("nvidia", "").split()
    return pathlib.Path(directory or RESULTS) / f"{words[0] if words else 'gpu'}.json"


def run_meta(device=None) -> dict:
    """gpu, torch, triton, commit, date: the fields every record carries."""
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"gpu": device_name(device), "torch": torch.__version__, "triton": triton_version, "commit": git_commit(),
            "date": datetime.date.today().isoformat()}


def merge_records(path, records: list[dict], benchmarks=None, by_impl: bool = False,
                  by_param: str | None = None) -> pathlib.Path:
    """Write `records` into the results file at `path`, replacing the records of `benchmarks` (default: the benchmarks
    that `records` hold) and keeping every other benchmark's. by_impl: replace only the (benchmark, impl) pairs that
    `records` hold, so a benchmark measured in several runs (a subset of implementations each) keeps the others;
    by_param: likewise, replace only the (benchmark, params[by_param]) pairs (e.g. "case": train vs inference)."""
    path = pathlib.Path(path)
    existing = json.loads(path.read_text())["records"] if path.exists() else []
    if by_impl or by_param:
        def key(r):
            return (r.get("benchmark"), r.get("impl") if by_impl else r.get("params", {}).get(by_param))
        replaced_keys = {key(r) for r in records}
        kept = [r for r in existing if key(r) not in replaced_keys]
    else:
        replaced = set(benchmarks) if benchmarks is not None else {r["benchmark"] for r in records}
        kept = [r for r in existing if r.get("benchmark") not in replaced]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"records": kept + records}, indent=1) + "\n")
    return path
