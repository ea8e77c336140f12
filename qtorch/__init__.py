"""qtorch: quantized and mixed-precision deep learning for PyTorch on NVIDIA GPUs."""
from qtorch._ext import cuda_kernels_available

__version__ = "0.1.0"
__all__ = ["cuda_kernels_available"]
