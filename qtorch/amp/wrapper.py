"""MixedPrecision: the 16-32 mixed-precision training recipe (Micikevicius et al., ICLR 2018) as one wrapper.

  half weights  w16 = round(w32)                  used by forward and backward (activations in half too)
  loss scaling  backward(S · loss)                 so small gradients survive fp16
  master step   g32 = float(g16) / S  (one fused pass that also flags inf/NaN);
                skip the step if any g32 is inf/NaN, else clip g32, optimizer.step() on w32
  refresh       w16 ← round(w32)                   one fused multi-tensor copy
Precision-sensitive modules (normalization, softmax, losses) keep fp32 parameters and run in fp32.
"""
import math
import warnings
import weakref
from functools import partial

import torch
import torch.nn as nn
from torch.utils._pytree import tree_map

from qtorch.amp.distributed import check_fsdp_not_started, local_tensor, local_tensors, max_over_ranks, set_param_data
from qtorch.amp.fp32_modules import DEFAULT_FP32_MODULES, find_fp32_modules, install_fp32_hooks
from qtorch.amp.loss_scaler import LossScaler
from qtorch.amp.memory import training_memory_breakdown

__all__ = ["MixedPrecision"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)
_WRAPPED_MODULES = weakref.WeakSet()  # models already converted by a MixedPrecision


def _make_scaler(loss_scale, dtype) -> LossScaler | None:
    if isinstance(loss_scale, LossScaler):
        return loss_scale
    if loss_scale == "auto":  # the paper's recipe needs scaling for fp16 only: bf16 has fp32's exponent range
        return LossScaler() if dtype == torch.float16 else None
    if loss_scale == "dynamic":
        return LossScaler()
    if loss_scale is None:
        return None
    if isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
        if not math.isfinite(loss_scale) or loss_scale <= 0:
            raise ValueError(f"loss_scale: expected a positive finite static scale, got {loss_scale!r}")
        return LossScaler(float(loss_scale), dynamic=False)
    raise ValueError(f"loss_scale: expected 'auto', 'dynamic', a positive float, None or a LossScaler, "
                     f"got {loss_scale!r}")


def _overflow_threshold(dtype: torch.dtype) -> float:
    """The smallest magnitude that rounds to inf in ``dtype``: max + ulp(max)/2."""
    fi = torch.finfo(dtype)
    return fi.max + 2.0 ** math.floor(math.log2(fi.max)) * fi.eps / 2


def _check_castable(named: list[tuple[str, torch.Tensor]], dtype: torch.dtype) -> None:
    """ValueError naming the first tensor holding NaN/inf or a value that overflows ``dtype`` (one host sync;
    DTensor shards are checked locally and the maxima combined over ranks)."""
    named = [(n, t) for n, t in named if t.numel() > 0]
    if not named:
        return
    local_max = torch._foreach_norm(local_tensors(t for _, t in named), math.inf)
    max_abs = max_over_ranks(torch.stack([m.float() for m in local_max])).tolist()
    limit = _overflow_threshold(dtype)
    for (name, _), m in zip(named, max_abs):
        if not math.isfinite(m):
            raise ValueError(f"model: parameter {name!r} holds NaN or inf")
        if m >= limit:
            raise ValueError(f"model: parameter {name!r} has |value| up to {m:g}, beyond the range of {dtype} "
                             f"(max {torch.finfo(dtype).max:g}); rescale it or keep its module in fp32 "
                             f"(fp32_modules=...)")


def _cast_forward_inputs(dtype: torch.dtype, module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook of the root module: floating tensors among its inputs -> dtype (as FSDP2's
    cast_forward_inputs); integer tensors (token ids, labels) and everything else pass unchanged."""
    def cast(t):
        return t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t

    return tree_map(cast, args), tree_map(cast, kwargs)


class MixedPrecision:
    """Train ``model`` in half precision with fp32 master weights updated by ``optimizer``.

    Converts ``model`` in place: its parameters and floating buffers become ``dtype`` (``Module.half()`` /
    ``bfloat16()`` semantics), except inside the modules matched by ``fp32_modules``, which keep fp32 parameters
    (their own masters) and run in fp32. Floating tensors passed to ``model(...)`` (positional or keyword, nested in
    lists / tuples / dicts) are cast to ``dtype`` at the model boundary by a forward pre-hook, so fp32 batches work
    as they are; integer inputs are left alone. The optimizer's parameter groups are repointed at fp32 master copies
    (hyper-parameters kept), so any ``torch.optim`` optimizer updates fp32 weights.

    Loop::

        mp = MixedPrecision(model, optimizer, dtype=torch.float16)
        loss = loss_fn(model(x), y)
        mp.backward(loss)           # call several times to accumulate (accumulated in fp32)
        if mp.step(max_grad_norm=1.0):   # False: skipped (inf/NaN gradients); the scale was backed off
            scheduler.step()

    Args:
        model: the ``nn.Module`` to train; every parameter requiring grad must be held by ``optimizer``.
        optimizer: a ``torch.optim.Optimizer`` over ``model``'s parameters, created before wrapping.
        dtype: ``torch.float16`` or ``torch.bfloat16``.
        loss_scale: ``"auto"`` (dynamic for fp16, none for bf16), ``"dynamic"`` (2^16 start, ×2 per 2000 clean
            steps, ×0.5 on overflow, floor 1), a float (static), ``None``, or a ``LossScaler``.
        master_weights: keep fp32 masters (True) or let the optimizer update the half weights directly (False).
        fp32_modules: module types, or fnmatch patterns on class names / qualified names, that run in fp32;
            ``()`` for none. Default: normalization layers (incl. any class named ``*Norm``), softmax, losses.

    Host syncs: one per ``step()`` when loss scaling is on (to decide the skip), none otherwise; plus one per
    ``backward()`` until the first successful update (the NaN-loss check).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, dtype: torch.dtype = torch.float16,
                 loss_scale="auto", master_weights: bool = True, fp32_modules=DEFAULT_FP32_MODULES):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if dtype not in _HALF_DTYPES:
            raise ValueError(f"dtype: expected torch.float16 or torch.bfloat16, got {dtype!r}")
        if any(m in _WRAPPED_MODULES for m in model.modules()):
            raise ValueError("model: already converted by a MixedPrecision wrapper")
        check_fsdp_not_started(model)
        self.model, self.optimizer, self.dtype = model, optimizer, dtype
        self.master_weights = bool(master_weights)
        self.scaler = _make_scaler(loss_scale, dtype)

        names = {}  # id(param) -> qualified name
        for name, p in model.named_parameters():
            names.setdefault(id(p), name)
        held = self._check_optimizer(names)
        fp32_roots = find_fp32_modules(model, fp32_modules)
        fp32_ids = {id(p) for root in fp32_roots.values() for p in root.parameters()}
        self._check_ties(fp32_roots, fp32_ids, names)
        to_half = [(names[id(p)], p) for p in model.parameters() if p.is_floating_point() and id(p) not in fp32_ids]
        _check_castable(to_half + [(names[id(p)], p) for p in held if id(p) in fp32_ids], dtype)

        # fp32 masters: the original fp32 storage where there is one (no copy), else an fp32 copy.
        trainable = [p for p in held if p.requires_grad]
        self._halves: list[nn.Parameter] = []  # (model) half parameters with a master, aligned with _masters
        self._masters: list[nn.Parameter] = []  # fp32 copies the optimizer updates
        self._direct: list[nn.Parameter] = []  # parameters the optimizer updates in place (fp32 modules' ones)
        master_of = {}
        for p in trainable:
            if id(p) in fp32_ids or not self.master_weights:
                self._direct.append(p)
            else:
                master = nn.Parameter(p.detach().float() if p.dtype != torch.float32 else p.detach())
                master_of[id(p)] = master
                self._halves.append(p)
                self._masters.append(master)
        self._convert_model(fp32_roots)
        self._repoint_optimizer(master_of)
        self._named_masters = {names[id(p)]: master_of.get(id(p), p) for p in trainable}
        model.register_forward_pre_hook(partial(_cast_forward_inputs, dtype), with_kwargs=True)
        for root in fp32_roots.values():
            install_fp32_hooks(root, dtype)
        _WRAPPED_MODULES.add(model)
        self.fp32_module_names = list(fp32_roots)

        self.updates = 0  # optimizer steps taken
        self.skipped_steps = 0  # steps skipped for inf/NaN gradients
        self.last_grad_norm: torch.Tensor | None = None  # total norm of the unscaled gradients, when clipping
        self._inv_scale: tuple[float, torch.Tensor] | None = None  # (S, 1/S as a (1,) fp32 device tensor)
        self._warned_floor = False

    # ---- wrap-time checks and conversion -------------------------------------------------------------------
    def _check_optimizer(self, names: dict) -> list[nn.Parameter]:
        """The optimizer's parameters, after checking they are floating parameters of the model on one device."""
        held, seen = [], set()
        for gi, group in enumerate(self.optimizer.param_groups):
            for p in group["params"]:
                if id(p) not in names:
                    raise ValueError(f"optimizer: param_groups[{gi}] holds a tensor of shape {tuple(p.shape)} that "
                                     f"is not a parameter of model")
                if not p.is_floating_point():
                    raise TypeError(f"optimizer: parameter {names[id(p)]!r} has dtype {p.dtype}; only floating "
                                    f"parameters can be trained in mixed precision")
                if id(p) not in seen:
                    seen.add(id(p))
                    held.append(p)
        orphans = [names[id(p)] for p in self.model.parameters() if p.requires_grad and id(p) not in seen]
        if orphans:
            raise ValueError(f"model: parameters {orphans[:5]}{' ...' if len(orphans) > 5 else ''} require grad but "
                             f"are not held by optimizer; add them to it or set requires_grad=False")
        devices = {p.device for p in held}
        if len(devices) > 1:
            raise ValueError(f"model: the optimizer's parameters span devices {sorted(map(str, devices))}; "
                             f"MixedPrecision needs them on one device")
        for p in held:
            for key, t in self.optimizer.state.get(p, {}).items():
                if isinstance(t, torch.Tensor) and t.dim() > 0 and t.device != p.device:
                    raise ValueError(f"optimizer: state {key!r} of parameter {names[id(p)]!r} is on {t.device} "
                                     f"but the parameter is on {p.device}; move the model before creating or "
                                     f"loading the optimizer")
        self._device = devices.pop() if devices else torch.device("cpu")
        return held

    def _check_ties(self, fp32_roots: dict, fp32_ids: set, names: dict) -> None:
        """A parameter shared by an fp32 module and a half module cannot be in both precisions."""
        inside = {id(m) for root in fp32_roots.values() for m in root.modules()}
        for module in self.model.modules():
            if id(module) in inside:
                continue
            for p in module._parameters.values():
                if p is not None and id(p) in fp32_ids:
                    raise ValueError(f"fp32_modules: parameter {names[id(p)]!r} is shared between an fp32 module "
                                     f"and a half-precision one; list both modules or neither")

    def _convert_model(self, fp32_roots: dict) -> None:
        """Cast the model to the half dtype, then put the fp32 modules' tensors back in fp32 (exact originals)."""
        params = [(p, p.data) for root in fp32_roots.values() for p in root.parameters()]
        buffers = [(m, name, b) for root in fp32_roots.values() for m in root.modules()
                   for name, b in m._buffers.items() if b is not None]
        self.zero_grad()  # gradients from before wrapping mean nothing to the masters
        self.model.half() if self.dtype == torch.float16 else self.model.bfloat16()
        for p, data in params:
            set_param_data(p, data.float() if data.is_floating_point() else data)
        for m, name, b in buffers:
            m._buffers[name] = b.float() if b.is_floating_point() else b

    def _repoint_optimizer(self, master_of: dict) -> None:
        """Swap the optimizer's parameters for their masters, keeping groups, hyper-parameters and any state."""
        for group in self.optimizer.param_groups:
            group["params"] = [master_of.get(id(p), p) for p in group["params"]]
        for p in list(self.optimizer.state):
            master = master_of.get(id(p))
            if master is not None:
                state = self.optimizer.state.pop(p)
                self.optimizer.state[master] = {
                    k: v.to(master.dtype) if isinstance(v, torch.Tensor) and v.dim() > 0 and v.is_floating_point()
                    else v for k, v in state.items()}

    # ---- training loop ---------------------------------------------------------------------------------------
    @property
    def masters(self) -> list[nn.Parameter]:
        """The fp32 master copies the optimizer updates, aligned with the half parameters they refresh."""
        return list(self._masters)

    @property
    def loss_scale(self) -> float | None:
        """The current loss scale S (None without loss scaling)."""
        return None if self.scaler is None else self.scaler.scale

    def backward(self, loss: torch.Tensor, **backward_kwargs) -> None:
        """Backpropagate S · loss into half gradients; gradients of earlier calls are first added to fp32.

        Raises ValueError if ``loss`` is NaN/inf before the first update (the forward pass produced it: scaling
        cannot help). Later non-finite losses make ``step()`` skip, when loss scaling is on.
        """
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss: expected a one-element tensor, got "
                             f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
        if not loss.requires_grad:
            raise ValueError("loss: does not require grad; compute it from the model's outputs")
        if self.updates == 0 and not bool(torch.isfinite(loss.detach()).all()):
            raise ValueError(f"loss: is {loss.item()} before the first update; the forward pass produced it "
                             f"(check the inputs, or the fp16 range of activations); loss scaling cannot fix it")
        self._move_half_grads_to_masters()
        scaled = loss if self.scaler is None else loss.float() * self.scaler.scale
        scaled.backward(**backward_kwargs)

    def _move_half_grads_to_masters(self) -> None:
        """master.grad (+)= float(half.grad), in fused passes; the half gradients are freed."""
        fresh, fresh_src, acc, acc_src, moved = [], [], [], [], []
        for h, m in zip(self._halves, self._masters):
            g = h.grad
            if g is None:
                continue
            moved.append(h)
            if m.grad is None:
                m.grad = torch.empty_like(m)  # (shape of p) fp32
                fresh.append(m.grad)
                fresh_src.append(g)
            else:
                acc.append(m.grad)
                acc_src.append(g)
        if not moved:
            return
        with torch.no_grad():
            if fresh:
                torch._foreach_copy_(local_tensors(fresh), local_tensors(fresh_src))
            if acc:
                torch._foreach_add_(local_tensors(acc), local_tensors(acc_src))
        for h in moved:
            h.grad = None

    def _unscale_and_check(self, grads: list[torch.Tensor]) -> bool:
        """g ← g / S in place, fused with the inf/NaN check; True if any gradient is non-finite on any rank (one
        host sync; the flag is all-reduced with MAX over the default process group when one is initialized)."""
        scale = self.scaler.scale
        if self._inv_scale is None or self._inv_scale[0] != scale:
            self._inv_scale = (scale, torch.full((1,), 1.0 / scale, dtype=torch.float32, device=self._device))
        found_inf = torch.zeros(1, dtype=torch.float32, device=self._device)
        by_dtype = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(local_tensor(g))
        for same_dtype in by_dtype.values():
            torch._amp_foreach_non_finite_check_and_unscale_(same_dtype, found_inf, self._inv_scale[1])
        return bool(max_over_ranks(found_inf).item())

    def step(self, max_grad_norm: float | None = None) -> bool:
        """Unscale, check, clip, update the fp32 masters, refresh the half weights; consume the gradients.

        Returns True if the optimizer stepped, False if the step was skipped because a gradient was inf/NaN (the
        weights and optimizer state are then untouched and a dynamic scale is halved). ``max_grad_norm`` clips the
        total 2-norm of the unscaled fp32 gradients (``last_grad_norm`` keeps it, before clipping).
        """
        if max_grad_norm is not None and (isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float))
                                          or not math.isfinite(max_grad_norm) or max_grad_norm <= 0):
            raise ValueError(f"max_grad_norm: expected a positive finite number or None, got {max_grad_norm!r}")
        self._move_half_grads_to_masters()
        with_grad = [p for p in self._masters + self._direct if p.grad is not None]
        if not with_grad:
            raise RuntimeError("step: no parameter has a gradient; call backward(loss) before step()")
        if self.scaler is not None:
            found_inf = self._unscale_and_check([p.grad for p in with_grad])
            self.scaler.update(found_inf)
            if found_inf:
                self.skipped_steps += 1
                if self.scaler.at_floor and not self._warned_floor:
                    self._warned_floor = True
                    warnings.warn(f"MixedPrecision: gradients are still inf/NaN at the loss-scale floor "
                                  f"({self.scaler.min_scale:g}); steps keep being skipped", RuntimeWarning)
                self.zero_grad()
                return False
        if max_grad_norm is not None:
            self.last_grad_norm = torch.nn.utils.clip_grad_norm_(with_grad, max_grad_norm)
        stepped = [i for i, m in enumerate(self._masters) if m.grad is not None]
        self.optimizer.step()
        if stepped:
            with torch.no_grad():
                torch._foreach_copy_(local_tensors(self._halves[i] for i in stepped),
                                     local_tensors(self._masters[i] for i in stepped))
        self.zero_grad()
        self.updates += 1
        return True

    def zero_grad(self) -> None:
        """Drop every gradient: the model's (half and fp32) and the masters'."""
        for p in self.model.parameters():
            p.grad = None
        for m in self._masters:
            m.grad = None

    # ---- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Masters (by parameter name), optimizer, loss scaler and counters. Tensors are references, as in
        ``nn.Module.state_dict()``: ``torch.save`` or ``copy.deepcopy`` it to take a snapshot."""
        return {"dtype": str(self.dtype), "master_weights": self.master_weights,
                "masters": dict(self._named_masters), "optimizer": self.optimizer.state_dict(),
                "loss_scaler": None if self.scaler is None else self.scaler.state_dict(),
                "updates": self.updates, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict) -> None:
        """Restore masters, optimizer, scaler and counters, then refresh the half weights from the masters."""
        keys = {"dtype", "masters", "optimizer", "loss_scaler", "updates", "skipped_steps", "master_weights"}
        if not isinstance(state, dict) or not keys <= set(state):
            raise ValueError(f"state: expected a MixedPrecision.state_dict() with keys {sorted(keys)}")
        if state["dtype"] != str(self.dtype) or state["master_weights"] != self.master_weights:
            raise ValueError(f"state: saved with dtype={state['dtype']}, master_weights={state['master_weights']}; "
                             f"this wrapper has dtype={self.dtype}, master_weights={self.master_weights}")
        if (state["loss_scaler"] is None) != (self.scaler is None):
            raise ValueError("state: loss scaling on in one of the saved state and this wrapper, off in the other")
        saved, mine = set(state["masters"]), set(self._named_masters)
        if saved != mine:
            raise ValueError(f"state: master names differ; missing {sorted(mine - saved)[:5]}, "
                             f"unexpected {sorted(saved - mine)[:5]}")
        for name, t in state["masters"].items():
            if t.shape != self._named_masters[name].shape:
                raise ValueError(f"state: master {name!r} has shape {tuple(t.shape)}, "
                                 f"expected {tuple(self._named_masters[name].shape)}")
        with torch.no_grad():
            for name, t in state["masters"].items():
                self._named_masters[name].copy_(t)
            if self._halves:
                torch._foreach_copy_(local_tensors(self._halves), local_tensors(self._masters))
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["loss_scaler"])
        self.updates, self.skipped_steps = int(state["updates"]), int(state["skipped_steps"])

    # ---- accounting -----------------------------------------------------------------------------------------------
    def memory_breakdown(self) -> dict[str, int]:
        """Actual bytes by role (see ``qtorch.amp.memory.training_memory_breakdown``); with Adam,
        half_weights + half_grads + fp32_masters + optimizer_states = 16 bytes/parameter once gradients exist."""
        return training_memory_breakdown(self.model, self.optimizer, self._masters, self.dtype)

    def __repr__(self) -> str:
        return (f"MixedPrecision(dtype={self.dtype}, master_weights={self.master_weights}, scaler={self.scaler}, "
                f"fp32_modules={len(self.fp32_module_names)}, updates={self.updates}, "
                f"skipped_steps={self.skipped_steps})")
