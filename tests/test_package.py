"""The package imports and works without the CUDA extension; the build skips it with one clear message."""
import subprocess
import sys
from pathlib import Path

import torch

import qtorch
from qtorch import _ext

ROOT = Path(__file__).resolve().parents[1]


def test_import_and_kernel_availability():
    assert isinstance(qtorch.cuda_kernels_available(), bool)
    if not torch.cuda.is_available():
        assert qtorch.cuda_kernels_available() is False


def test_every_op_is_registered():
    import qtorch.ops  # noqa: F401
    for name in ("quantize_per_token", "int8_scaled_mm", "int8_linear_requant", "group_quantize", "group_dequantize",
                 "weight_only_linear", "codebook_linear"):
        assert hasattr(torch.ops.qtorch, name), name


def test_extension_absence_is_reported_not_raised():
    loaded = _ext.load_extension()
    assert loaded or _ext.extension_error() is not None


def test_setup_skips_the_extension_with_one_message_on_a_cpu_torch():
    if torch.version.cuda is not None:
        return  # a CUDA build of torch: the extension is built, nothing to skip
    code = ("import runpy, sys; sys.argv = ['setup.py', '--name']; runpy.run_path('setup.py', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [ln for ln in out.stdout.splitlines() if "skipping the CUDA extension" in ln]
    assert len(lines) == 1 and "CPU build" in lines[0]
