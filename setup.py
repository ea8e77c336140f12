"""Build qtorch; the CUDA extension qtorch._C is optional.

It is built when torch is a CUDA build and nvcc is found (for sm_90a and a portable sm_80 target), and skipped with one
message otherwise: `import qtorch` then runs the PyTorch reference implementations.
"""
import glob
import os
import shutil

from setuptools import setup

CUDA_ARCHS = "8.0;9.0a"  # portable mma.sync path (A100, L4, RTX 40xx via sm_80 SASS/PTX) + Hopper wgmma path


def _with_sm90a(archs: str) -> str:
    """TORCH_CUDA_ARCH_LIST with Hopper as sm_90a: the wgmma / TMA kernels exist only in sm_90a code (on a plain sm_90
    build they would trap), so "9.0" becomes "9.0a" and a list without Hopper gains "9.0a"."""
    entries = [a for a in archs.replace(";", " ").split() if a]
    out = [a.replace("9.0", "9.0a", 1) if a.split("+")[0] == "9.0" else a for a in entries]
    if not any(a.split("+")[0] == "9.0a" for a in out):
        out.append("9.0a")
    return ";".join(out)


def _skip(reason):
    print(f"qtorch: skipping the CUDA extension qtorch._C ({reason}); the PyTorch reference ops will be used.")
    return [], {}


def cuda_extension():
    """Return (ext_modules, cmdclass) for qtorch._C, or empty ones with a message when it cannot be built."""
    if os.environ.get("QTORCH_SKIP_CUDA") == "1":
        return _skip("QTORCH_SKIP_CUDA=1")
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        return _skip("torch is not importable at build time; install torch first and build with --no-build-isolation")
    if torch.version.cuda is None:
        return _skip(f"torch {torch.__version__} is a CPU build")
    if CUDA_HOME is None or shutil.which("nvcc", path=os.path.join(CUDA_HOME, "bin") + os.pathsep + os.environ.get("PATH", "")) is None:
        return _skip("nvcc was not found (set CUDA_HOME)")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", CUDA_ARCHS)
    os.environ["TORCH_CUDA_ARCH_LIST"] = _with_sm90a(archs)
    if os.environ["TORCH_CUDA_ARCH_LIST"] != archs:
        print(f"qtorch: TORCH_CUDA_ARCH_LIST {archs!r} -> {os.environ['TORCH_CUDA_ARCH_LIST']!r} (Hopper kernels need sm_90a)")
    sources = sorted(glob.glob("csrc/**/*.cu", recursive=True) + glob.glob("csrc/**/*.cpp", recursive=True))
    ext = CUDAExtension(
        name="qtorch._C",
        sources=sources,
        include_dirs=[os.path.abspath("csrc")],
        extra_compile_args={
            "cxx": ["-O3"],
            "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr"],
        },
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)}


ext_modules, cmdclass = cuda_extension()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
