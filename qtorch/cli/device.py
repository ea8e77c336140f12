"""--device: resolve auto / cpu / cuda to a torch.device, or say in one line why it cannot be used."""
import torch

from qtorch.cli.errors import ENVIRONMENT_EXIT, CLIError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise CLIError(f"--device: expected one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        why = "it is a CPU build" if torch.version.cuda is None else "no CUDA device is visible"
        raise CLIError(f"--device cuda: no CUDA GPU is available (torch {torch.__version__}: {why}); "
                       "use --device cpu", ENVIRONMENT_EXIT)
    return torch.device(name)
