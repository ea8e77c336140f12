"""Routing of qtorch:: ops to their backends: one table per op, one place that picks.

Each op registers an ordered table of Backends (its measured preference order, best first). A backend says, from
metadata only (shapes, dtypes, strides, Python ints), whether it can run a call and why not: `can_implement(**meta)
-> (ok, reason)`, and optionally where the measurements prefer it (`preferred(**meta)`, e.g. a range of M).
`select` returns the first backend of the call's device type that can run the call and is preferred for it, else
the first that can; `force_backend` pins one backend by name for benchmarks and tests (an error naming the reason
when it cannot run the call). Every backend that can run a call computes the same contract, so preferences are
speed only: a symbolic size under torch.compile is decided by its size hint (see qtorch.ops.weight_only). The
predicates read metadata and constants only, so `select` remembers its answer per (op, metadata): each call shape
is decided once.

    with qtorch.ops.force_backend("weight_only_linear", "triton_gemv"):
        y = qtorch.ops.weight_only_linear(x, w_q, w_scale, w_zp, 4, 128, None)
"""
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

YES = (True, "")


@dataclass(frozen=True)
class Backend:
    """One implementation of an op: `run(*op_args)` on the device types `devices` ("cpu", "cuda") when
    `can_implement(**meta)`."""

    name: str
    devices: tuple[str, ...]
    can_implement: Callable[..., tuple[bool, str]]
    run: Callable
    preferred: Callable[..., bool] | None = None


class _Forced(threading.local):
    def __init__(self):
        self.by_op: dict[str, str] = {}


_forced = _Forced()
_tables: dict[str, list[Backend]] = {}
# select's answers by (op, meta): the predicates read metadata and constants only, so each distinct call shape is
# decided once (cleared when a table changes; tests that patch a routing constant call clear_cache).
_chosen: dict[tuple, Backend] = {}
CACHE_SIZE = 4096


def clear_cache() -> None:
    _chosen.clear()


def register_backends(op_name: str, backends: list[Backend]) -> None:
    """Set the table of `op_name` (best first); backends with the same name replace, new ones are appended."""
    clear_cache()
    table = _tables.setdefault(op_name, [])
    for backend in backends:
        names = [b.name for b in table]
        if backend.name in names:
            table[names.index(backend.name)] = backend
        else:
            table.append(backend)


def insert_backend(op_name: str, backend: Backend, before: str | None = None) -> None:
    """Add `backend` to `op_name`'s table ahead of the backend named `before` (appended when None)."""
    clear_cache()
    table = _tables[op_name]
    table[:] = [b for b in table if b.name != backend.name]
    index = [b.name for b in table].index(before) if before is not None else len(table)
    table.insert(index, backend)


def backends(op_name: str) -> list[Backend]:
    """The table of `op_name`, in preference order (a copy)."""
    return list(_tables[op_name])


def select(op_name: str, /, **meta) -> Backend:
    """The backend that runs this call: the forced one (or an error saying why it cannot), else the first for the
    device type meta["device"] ("cpu", "cuda") whose can_implement(**meta) holds (and preferred, see above)."""
    forced = _forced.by_op.get(op_name)
    if forced is None:
        key = (op_name, *meta.items())
        backend = _chosen.get(key)
        if backend is None:
            if len(_chosen) >= CACHE_SIZE:
                _chosen.clear()
            backend = _chosen[key] = _pick(op_name, meta)
        return backend
    table, device = _tables[op_name], meta["device"]
    backend = next(b for b in table if b.name == forced)
    if device not in backend.devices:
        raise ValueError(f"{op_name}: backend {forced!r} runs on {backend.devices}, the inputs are on {device}")
    ok, reason = backend.can_implement(**meta)
    if not ok:
        raise ValueError(f"{op_name}: backend {forced!r} cannot run this call: {reason}")
    return backend


def _pick(op_name: str, meta: dict) -> Backend:
    table, device = _tables[op_name], meta["device"]
    reasons, fallback = [], None
    for backend in table:
        if device in backend.devices:
            ok, reason = backend.can_implement(**meta)
            if ok and (backend.preferred is None or backend.preferred(**meta)):
                return backend
            if ok:
                fallback = fallback or backend
            else:
                reasons.append(f"{backend.name}: {reason}")
    if fallback is not None:
        return fallback
    raise ValueError(f"{op_name}: no backend on {device} takes this call ({'; '.join(reasons) or 'none registered'})")


@contextlib.contextmanager
def force_backend(op_name: str, backend_name: str):
    """Within the block (this thread), calls of qtorch::`op_name` run `backend_name` or raise why they cannot."""
    if op_name not in _tables:
        raise ValueError(f"op_name: expected one of {sorted(_tables)}, got {op_name!r}")
    names = [b.name for b in _tables[op_name]]
    if backend_name not in names:
        raise ValueError(f"backend_name: {op_name} has backends {names}, got {backend_name!r}")
    previous = _forced.by_op.get(op_name)
    _forced.by_op[op_name] = backend_name
    try:
        yield
    finally:
        if previous is None:
            del _forced.by_op[op_name]
        else:
            _forced.by_op[op_name] = previous
