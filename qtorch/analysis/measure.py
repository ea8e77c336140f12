"""measure_memory(step_fn): peak memory of one call, on CUDA from torch.cuda.memory_stats, everywhere from a
tensor-tracking estimate (every storage an op creates, alive until freed), split by role at the peak."""
import gc
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

CATEGORIES = ("weights", "masters", "gradients", "optimizer_states", "activations_and_temporaries")


@dataclass(frozen=True)
class MemoryMeasurement:
    """Peak bytes of one call of step_fn and where they were.

    peak_bytes: torch.cuda.memory_stats' allocated_bytes.all.peak on CUDA, else the tracked peak.
    tracked_peak_bytes: the tensor-tracking peak (storages created by ops + those that existed at the start).
    by_category: the tracked storages alive at the tracked peak, by role (CATEGORIES).
    untracked_start_bytes: on CUDA, bytes allocated before the call that no model / optimizer tensor accounts for:
      CUDA library workspaces (cuBLAS keeps one per thread and stream) and the caller's other tensors.
    """

    peak_bytes: int
    tracked_peak_bytes: int
    start_bytes: int
    by_category: dict[str, int]
    method: str  # "cuda.memory_stats" or "tensor-tracking"
    device: str
    predicted_bytes: int | None = None
    untracked_start_bytes: int | None = None

    @property
    def relative_error(self) -> float | None:
        """(predicted - measured) / measured, when a prediction was given."""
        if self.predicted_bytes is None:
            return None
        return (self.predicted_bytes - self.peak_bytes) / self.peak_bytes


class _StorageTracker(TorchDispatchMode):
    """Counts every distinct storage alive (created by an op inside the mode, or registered at the start)."""

    def __init__(self, roles):
        super().__init__()
        self.roles = roles  # callable: () -> {storage key: role} for the storages whose role is known now
        self.live: dict[int, int] = {}  # storage data_ptr -> bytes
        self.current = 0
        self.peak = 0
        self.peak_live: dict[int, int] = {}
        self.peak_roles: dict[int, str] = {}
        self._finalizers: list[weakref.finalize] = []

    def close(self) -> None:
        """Drop the finalizers (the global registry would otherwise keep this tracker, and through `roles` the model
        and optimizer, alive for as long as any tracked storage lives) and the roles callable."""
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()
        self.roles = None

    def track(self, t: torch.Tensor) -> None:
        if t.device.type == "meta" or t.is_sparse:
            return
        storage = t.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0 or key in self.live:
            return
        self.live[key] = nbytes
        self.current += nbytes
        self._finalizers.append(weakref.finalize(storage, self._free, key))
        if self.current > self.peak:
            self.peak = self.current
            self.peak_live = dict(self.live)
            self.peak_roles = self.roles()

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self.track, out)
        return out


def _role_map(model, optimizer) -> dict[int, str]:
    """storage key -> role for the tensors the model and optimizer hold right now."""
    roles: dict[int, str] = {}

    def put(t, role):
        if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes():
            roles.setdefault(t.untyped_storage().data_ptr(), role)

    model_params = []
    if model is not None:
        model_params = list(model.parameters())
        for p in model_params:
            put(p, "weights")
            put(p.grad, "gradients")
        for b in model.buffers():
            put(b, "weights")
    if optimizer is not None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                put(p, "masters")  # optimizer parameters that are not the model's: fp32 master copies
                put(p.grad, "gradients")
        for state in optimizer.state.values():
            for t in state.values():
                put(t, "optimizer_states")
    return roles


def _cuda_device(device) -> torch.device | None:
    device = torch.device(device) if device is not None else None
    if device is None or device.type != "cuda":
        return None
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def measure_memory(step_fn, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                   device=None, predicted_bytes: int | None = None) -> MemoryMeasurement:
    """Run step_fn() once and report its peak memory beside an optional analytic prediction.

    device "cuda[:i]": peak = torch.cuda.memory_stats()["allocated_bytes.all.peak"] over the call (the tensors
    alive before it included). Otherwise the tensor-tracking estimate: the bytes of every distinct storage alive,
    counting those model and optimizer hold at the start plus every storage an op creates during the call, until
    it is freed. by_category splits the tracked peak by role (model's parameters and buffers = weights, optimizer
    parameters that are not the model's = masters, their .grad = gradients, optimizer.state = optimizer_states,
    the rest = activations_and_temporaries). Run warm-up steps before: the first step allocates optimizer state.
    Garbage left by earlier code is collected before the baseline: a reference cycle holding CUDA tensors (say the
    frames of a failed test's traceback) would otherwise be freed whenever the cyclic collector runs, possibly inside
    the call, and the peak would read the call's allocations less that garbage.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn: expected a callable taking no arguments, got {type(step_fn).__name__}")
    if model is not None and not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected an nn.Module or None, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer: expected a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    cuda = _cuda_device(device)
    gc.collect()
    tracker = _StorageTracker(lambda: _role_map(model, optimizer))
    for t in _start_tensors(model, optimizer):  # storages alive before the call
        tracker.track(t)
    start_tracked = tracker.current
    if cuda is not None:
        torch.cuda.synchronize(cuda)
        torch.cuda.reset_peak_memory_stats(cuda)
        start = torch.cuda.memory_allocated(cuda)
    try:
        with tracker:
            step_fn()
    finally:
        tracker.close()
    by_category = dict.fromkeys(CATEGORIES, 0)
    for key, nbytes in tracker.peak_live.items():
        by_category[tracker.peak_roles.get(key, "activations_and_temporaries")] += nbytes
    if cuda is not None:
        torch.cuda.synchronize(cuda)
        peak = torch.cuda.memory_stats(cuda)["allocated_bytes.all.peak"]
        return MemoryMeasurement(peak, tracker.peak, start, by_category, "cuda.memory_stats", str(cuda),
                                 predicted_bytes, max(start - start_tracked, 0))
    return MemoryMeasurement(tracker.peak, tracker.peak, start_tracked, by_category, "tensor-tracking",
                             str(device or "cpu"), predicted_bytes)


def _start_tensors(model, optimizer) -> list[torch.Tensor]:
    tensors = []
    if model is not None:
        tensors += [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
        tensors += list(model.buffers())
    if optimizer is not None:
        for group in optimizer.param_groups:
            tensors += [p for p in group["params"]] + [p.grad for p in group["params"] if p.grad is not None]
        tensors += [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return [t for t in tensors if t.untyped_storage().nbytes()]
