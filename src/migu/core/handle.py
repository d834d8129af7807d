"""``attach(model, config)``: MIGU on any ``torch.nn.Module``, reversibly, through hooks only.

Between two optimizer steps, forward hooks add up each target layer's output magnitudes (all
micro-batches of a gradient-accumulation cycle, one mask per step as in the official code). At step
time the magnitudes are averaged across data-parallel ranks, the ``floor(T * d_out)`` weakest units
of each layer are masked, and their gradient rows zeroed (``mode="grad"``) or, in addition, their
weights and optimizer state kept exactly as they were (``mode="strict"``).

With ``MiguConfig(fast_path=True)`` the eligible layers also compute only their kept weight-gradient
rows, masked per micro-batch with the running mask (see :mod:`migu.core.fast_path`).

Nothing global is patched: the handle owns its hooks (and, on the fast path, the instance
``forward`` of its layers) and removes exactly those.
"""

from __future__ import annotations

import types
import warnings
import weakref
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from migu.core.cluster import cluster_keep_mask, kmeans
from migu.core.config import MiguConfig
from migu.core.criteria import unit_scores
from migu.core.distributed import (
    UNSUPPORTED_SETUP_HELP,
    average_across_ranks,
    check_supported_setup,
    full_tensor,
    is_dtensor,
    sharded_row_scores,
    world_size,
)
from migu.core.fast_path import RowSlot, fallback_reason, install_fast_forward, lora_prefixes, uninstall
from migu.core.magnitude import output_magnitude
from migu.core.mask import keep_indices, keep_mask, mask_gradient_, num_masked
from migu.core.strict import RowSnapshot, restore_rows, snapshot_rows
from migu.core.targets import MaskedUnit, find_units, token_stream
from migu.core.token_mask import TokenMasks

__all__ = ["MiguHandle", "attach"]

# Parameters already under a live handle, by id (tensors cannot be dict keys by value): attaching
# twice, or to a parent and its child, is an error. Weak references: a dropped model frees its entries.
_ATTACHED: dict[int, weakref.ref[MiguHandle]] = {}


def _owner(param: torch.Tensor) -> MiguHandle | None:
    ref = _ATTACHED.get(id(param))
    handle = ref() if ref is not None else None
    return handle if handle is not None and handle._attached else None


def _in_backward() -> bool:
    """True while autograd runs a backward pass (activation checkpointing re-runs forwards there)."""
    graph_task_id = getattr(torch._C, "_current_graph_task_id", None)
    return graph_task_id is not None and graph_task_id() != -1


def _unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The ``torch.optim.Optimizer`` inside wrappers such as accelerate's ``AcceleratedOptimizer``."""
    inner = optimizer
    # AcceleratedOptimizer subclasses Optimizer without its hook state: always go to the innermost.
    while isinstance(getattr(inner, "optimizer", None), torch.optim.Optimizer):
        inner = inner.optimizer
    if not isinstance(inner, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer= must be a torch.optim.Optimizer (or a wrapper with an .optimizer attribute), "
            f"got {type(optimizer).__name__}."
        )
    return inner


def _encoder_decoder_prefixes(model: nn.Module) -> tuple[list[str], list[str]]:
    """Qualified names of the encoder and decoder stacks of an encoder-decoder model, else empty."""
    names = {id(m): n for n, m in model.named_modules()}
    enc, dec = [], []
    for module in model.modules():
        config = getattr(module, "config", None)
        if getattr(config, "is_encoder_decoder", False) and hasattr(module, "get_encoder"):
            encoder, decoder = module.get_encoder(), getattr(module, "get_decoder", lambda: None)()
            if encoder is not None and id(encoder) in names:
                enc.append(names[id(encoder)])
            if decoder is not None and id(decoder) in names:
                dec.append(names[id(decoder)])
            break
    return enc, dec


class _Source:
    """Running magnitudes of one module's output since the last optimizer step."""

    __slots__ = ("name", "stream", "total", "calls")

    def __init__(self, name: str, stream: str) -> None:
        self.name = name
        self.stream = stream
        self.total: torch.Tensor | None = None  # (d_out,) float32
        self.calls = 0


class MiguHandle:
    """MIGU attached to a model. Create it with :func:`attach`.

    Attributes:
        model: The model the hooks are on.
        config: The configuration.
        units: The masked weights (see :class:`migu.core.targets.MaskedUnit`).
        enabled: While False, no magnitudes are recorded and no mask is applied (training proceeds
            as without MIGU); setting it drops magnitudes recorded so far.
        magnitudes: Per source module name, the ``(d_out,)`` magnitudes behind the last mask
            (after averaging across ranks); with another ``criterion``, per unit name, its scores.
        masks: Per unit name, the ``(d_out,)`` bool mask of the last step, True = updated.
        steps: Number of optimizer steps masked so far.
        fast_path_units: With ``fast_path=True``, the units whose backward computes kept rows only.
        fast_path_fallbacks: With ``fast_path=True``, unit name -> why it keeps the dense path.
    """

    def __init__(
        self,
        model: nn.Module,
        config: MiguConfig,
        optimizer: Any | None = None,
        process_group: Any | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"migu.attach expects a torch.nn.Module, got {type(model).__name__}.")
        if not isinstance(config, MiguConfig):
            raise TypeError(f"config must be a migu.MiguConfig, got {type(config).__name__}.")
        if config.mode == "strict" and optimizer is None:
            raise ValueError(
                "MiguConfig(mode='strict') restores masked rows after the optimizer step, so it needs "
                "the optimizer: call migu.attach(model, config, optimizer=opt)."
            )
        self.model = model
        self.config = config
        self.units: list[MaskedUnit] = find_units(model, config)
        if config.clusters:
            narrow = sorted({(u.source, u.num_units) for u in self.units if u.num_units < config.clusters})
            if narrow:
                raise ValueError(
                    f"MiguConfig.clusters={config.clusters} is more than the output units of "
                    f"{', '.join(f'{n} ({d})' for n, d in narrow[:4])}{' ...' if len(narrow) > 4 else ''}: "
                    "a layer cannot have more clusters than units. Lower clusters or exclude those layers."
                )
        self._optimizer = _unwrap_optimizer(optimizer) if optimizer is not None else None
        check_supported_setup(model, [u.weight for u in self.units], optimizer)
        for unit in self.units:
            for p in (unit.weight, unit.bias):
                if p is not None and _owner(p) is not None:
                    raise RuntimeError(
                        f"MIGU is already attached to {unit.name!r} (through another handle on this model or "
                        "a module containing it). Call handle.remove() on the first one before attaching again."
                    )
        self._attached = True
        self._group = process_group
        self._enabled = True
        self.magnitudes: dict[str, torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.steps = 0
        self._token_masks = TokenMasks()
        self._hooks: list[RemovableHandle] = []
        self._snapshots: list[RowSnapshot] = []
        self._warned_no_padding_mask = False
        self._warned_nonfinite = False
        # True between a mask and the optimizer step it belongs to: lets a caller mask early (before
        # gradient clipping, as the official code does) without the step pre-hook masking twice.
        self._masked_since_step = False
        self._by_output = config.criterion == "output"  # other criteria need no forward statistic
        #: source name -> (d_out,) cluster id of each output unit (MIGU + Cluster); empty when off
        self.cluster_ids: dict[str, torch.Tensor] = {}

        enc, dec = _encoder_decoder_prefixes(model)
        modules = dict(model.named_modules())
        self._sources: dict[str, _Source] = {}
        for unit in self.units:
            if unit.source not in self._sources:
                source = _Source(unit.source, token_stream(unit.source, enc, dec))
                self._sources[unit.source] = source
                self._hooks.append(modules[unit.source].register_forward_hook(self._make_hook(source)))
        if config.clusters and config.cluster_by == "weight":
            for name in self._sources:
                unit = next(u for u in self.units if u.source == name)
                # FSDP2: cluster the whole weight (one all-gather per layer, once, on every rank).
                rows = full_tensor(unit.weight.detach()).movedim(unit.unit_dim, 0)  # (d_out, d_in)
                self.cluster_ids[name] = kmeans(rows, config.clusters, seed=config.seed)
        if config.ignore_padding:
            self._hooks.append(model.register_forward_pre_hook(self._token_masks.capture, with_kwargs=True))
            self._hooks.append(
                model.register_forward_hook(self._token_masks.release, with_kwargs=True, always_call=True)
            )
        self.fast_path_units: list[str] = []
        self.fast_path_fallbacks: dict[str, str] = {}
        # Fast path state: installed forwards, slots created by this forward of the model, its depth,
        # and the (rank-averaged) magnitudes behind the last running mask, valid until a layer records.
        self._fast_forwards: list[tuple[nn.Module, types.MethodType]] = []
        self._pending: list[tuple[str, RowSlot]] = []
        self._depth = 0
        self._fast_gathered: dict[str, torch.Tensor] | None = None
        if config.fast_path:
            self._install_fast_path(modules)
        if self._optimizer is not None:
            self._hooks.append(self._optimizer.register_step_pre_hook(self._before_step))
            self._hooks.append(self._optimizer.register_step_post_hook(self._after_step))
        for unit in self.units:
            for p in (unit.weight, unit.bias):
                if p is not None:
                    _ATTACHED[id(p)] = weakref.ref(self)

    # ------------------------------------------------------------------ recording
    def _make_hook(self, source: _Source):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            # Only training forwards count: evaluation under no_grad and checkpoint recomputation
            # inside backward would otherwise add to (or double) the magnitudes.
            if not self._enabled or not torch.is_grad_enabled() or _in_backward() or not self._by_output:
                return
            y = output[0] if isinstance(output, tuple | list) else output  # (..., d_out)
            m = output_magnitude(y, self._padding_mask_for(source, y), self.config.normalize)  # (d_out,)
            source.total = m if source.total is None else source.total.add_(m)
            source.calls += 1
            self._fast_gathered = None  # the running totals changed

        return hook

    def _padding_mask_for(self, source: _Source, y: torch.Tensor) -> torch.Tensor | None:
        if not self.config.ignore_padding:
            return None
        mask = self._token_masks.get(source.stream)
        if mask is None:
            if not self._warned_no_padding_mask:
                warnings.warn(
                    "MiguConfig(ignore_padding=True) but the model was called without an attention_mask "
                    "keyword argument: every position counts. Pass attention_mask=... to the model call "
                    "or set one with handle.set_token_mask(mask).",
                    stacklevel=3,
                )
                self._warned_no_padding_mask = True
            return None
        if tuple(mask.shape) != tuple(y.shape[:-1]):
            raise RuntimeError(
                f"MIGU padding mask of shape {tuple(mask.shape)} ({source.stream} tokens) does not fit the "
                f"output of {source.name!r} of shape {tuple(y.shape)}. Set the right mask for this call with "
                "handle.set_token_mask(mask, stream=...), or use MiguConfig(ignore_padding=False)."
            )
        return mask

    def set_token_mask(self, mask: torch.Tensor | None, stream: str = "main") -> None:
        """Set by hand which positions count (nonzero) for ``stream``; ``None`` clears it.

        Needed only when the model is not called with an ``attention_mask`` keyword argument.

        Args:
            mask: ``(B, T)`` for the token stream's layers.
            stream: ``"main"`` (encoder-only / decoder-only models), ``"encoder"`` or ``"decoder"``.
        """
        if stream not in ("main", "encoder", "decoder"):
            raise ValueError(f"stream={stream!r} must be 'main', 'encoder' or 'decoder'.")
        self._token_masks.set_manual(mask, stream)

    # ------------------------------------------------------------------ fast path
    def _install_fast_path(self, modules: dict[str, nn.Module]) -> None:
        """Swap the forward of every eligible unit's module (see :mod:`migu.core.fast_path`)."""
        loras = lora_prefixes(self.model)
        for unit in self.units:
            module = modules[unit.name] if unit.name in modules else None
            k = num_masked(unit.num_units, self.config.threshold)
            reason = "not a module" if module is None else fallback_reason(unit, module, k, loras)
            if reason is not None:
                self.fast_path_fallbacks[unit.name] = reason
                continue
            # unit_dim 1: transformers Conv1D, weight (d_in, d_out)
            method = install_fast_forward(module, self._slot_factory(unit.source), unit.unit_dim == 1)
            self._fast_forwards.append((module, method))
            self.fast_path_units.append(unit.name)
        if self.fast_path_fallbacks and self.config.threshold > 0:  # T = 0: plain training, by design
            reasons = sorted(set(self.fast_path_fallbacks.values()))
            warnings.warn(
                f"MiguConfig(fast_path=True): {len(self.fast_path_fallbacks)} of {len(self.units)} target "
                f"weights keep the dense path ({'; '.join(reasons)}); see handle.fast_path_fallbacks.",
                stacklevel=4,
            )
        if not self._fast_forwards:
            return
        self._hooks.append(self.model.register_forward_pre_hook(self._fast_enter))
        self._hooks.append(self.model.register_forward_hook(self._fast_exit, always_call=True))

    def _slot_factory(self, source: str):
        def new_slot() -> RowSlot | None:
            if not self._enabled:
                return None  # paused: the module's own forward, as without MIGU
            slot = RowSlot()
            # Checkpoint recomputation inside backward: the original forward's slot is the one used.
            if not _in_backward():
                self._pending.append((source, slot))
            return slot

        return new_slot

    def _fast_enter(self, module: nn.Module, args: tuple) -> None:
        self._depth += 1

    def _fast_exit(self, module: nn.Module, args: tuple, output: Any) -> None:
        """End of the model's forward: fill this forward's slots with the running mask."""
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        pending, self._pending = self._pending, []
        # The same condition on every rank (not "pending is non-empty", which depends on the data):
        # the all-reduce inside _gather_magnitudes is a collective.
        if not (self._enabled and torch.is_grad_enabled() and not _in_backward()):
            return
        gathered = self._gather_magnitudes()
        self._fast_gathered = gathered  # the step reuses it if no layer records before the step
        kept = self._kept_indices(gathered, {source for source, _ in pending})
        for source, slot in pending:
            slot.keep = kept.get(source)  # None (dense gradient) for a source not recorded

    def _kept_indices(
        self, magnitudes: dict[str, torch.Tensor], sources: set[str]
    ) -> dict[str, torch.Tensor]:
        """Kept row indices per source, ranked exactly as :meth:`_keep_masks` ranks them."""
        out: dict[str, torch.Tensor] = {}
        by_width: dict[int, list[str]] = defaultdict(list)
        for name in sources:
            if name not in magnitudes:
                continue
            if name in self.cluster_ids:  # cluster masks keep a variable count: indices need a sync
                keep = cluster_keep_mask(magnitudes[name], self.cluster_ids[name], self.config.threshold)
                out[name] = keep.nonzero().squeeze(1)
            else:
                by_width[magnitudes[name].shape[0]].append(name)
        for names in by_width.values():
            stacked = torch.stack([magnitudes[n] for n in names])  # (L, width)
            kept, _ = keep_indices(stacked, self.config.threshold)  # (L, n_keep)
            for i, n in enumerate(names):
                out[n] = kept[i]
        return out

    # ------------------------------------------------------------------ masking
    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self.reset()

    def reset(self) -> None:
        """Drop the magnitudes recorded since the last step (e.g. after forwards that should not count)."""
        for source in self._sources.values():
            source.total, source.calls = None, 0
        self._fast_gathered = None

    def _gather_magnitudes(self) -> dict[str, torch.Tensor]:
        """This step's magnitudes per source, averaged across ranks; sources never called are left out."""
        sources = list(self._sources.values())
        device = next((s.total.device for s in sources if s.total is not None), None)
        if device is None:
            device = self.units[0].weight.device
        sizes = [self._source_width(s) for s in sources]
        parts = [
            s.total if s.total is not None else torch.zeros(n, device=device)
            for s, n in zip(sources, sizes, strict=True)
        ]
        if not (self.config.sync_distributed and world_size(self._group) > 1):
            # One process: call counts are known on the host, so no device round trip (on CUDA a
            # host-to-device copy or a bool() of a device tensor waits for the queued kernels).
            chunks = torch.split(torch.cat(parts), sizes)
            return {s.name: chunks[i] for i, s in enumerate(sources) if s.calls > 0}
        calls = torch.tensor([float(s.calls) for s in sources], device=device)
        # One collective for all layers: magnitudes and call counts in one flat buffer.
        flat = torch.cat([*parts, calls])
        average_across_ranks(flat, self._group)
        chunks = torch.split(flat, [*sizes, len(sources)])
        called = (chunks[-1] > 0).tolist()  # one device-to-host copy, not one per layer
        return {s.name: chunks[i] for i, s in enumerate(sources) if called[i]}

    def fit_clusters(self, batches: Iterable[dict[str, Any]]) -> None:
        """Cluster each layer's units by their co-magnitude profiles over ``batches`` (MIGU + Cluster).

        Each batch is one forward (model inputs as keyword arguments); a unit's profile is its
        magnitude on every batch, L1-normalized over the batches. Nothing is trained, and nothing
        recorded here counts towards the next mask.

        Raises:
            ValueError: the config has ``clusters=0`` or ``cluster_by != "magnitude"``, or no batch.
        """
        if not self.config.clusters or self.config.cluster_by != "magnitude":
            raise ValueError("fit_clusters needs MiguConfig(clusters=k > 0, cluster_by='magnitude').")
        self.reset()
        profiles: dict[str, list[torch.Tensor]] = defaultdict(list)
        with torch.enable_grad():  # the hooks record training-style forwards only
            for batch in batches:
                self.model(**batch)
                for name, m in self._gather_magnitudes().items():
                    profiles[name].append(m)
                self.reset()
        if not profiles:
            raise ValueError("fit_clusters got no batch (or no target layer ran).")
        for name, ms in profiles.items():
            p = torch.stack(ms, dim=1)  # (d_out, n_batches)
            p = p / p.sum(dim=1, keepdim=True).clamp(min=1e-12)
            self.cluster_ids[name] = kmeans(p, self.config.clusters, seed=self.config.seed)

    def _source_width(self, source: _Source) -> int:
        if source.total is not None:
            return source.total.shape[0]
        unit = next(u for u in self.units if u.source == source.name)
        return unit.num_units

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Mask this step's gradients from the magnitudes recorded since the last call.

        Called automatically before ``optimizer.step()`` when the handle was given the optimizer;
        otherwise call it after ``backward()`` and before ``step()``. A layer with no training
        forward since the last call is left unmasked. With an optimizer attached, calling it
        yourself before ``clip_grad_norm_`` masks before clipping (the official code's order); the
        optimizer's pre-hook then leaves that step alone.

        Under FSDP2 every rank masks the rows of its own gradient shard with the full mask.

        Raises:
            RuntimeError: a target gradient does not have its weight's shape, or a layer's recorded
                output width is not its weight's (sharded setups MIGU does not support).
        """
        if not self._attached:
            raise RuntimeError("This MIGU handle was removed; attach again to use it.")
        if not self._enabled:
            self.reset()
            return
        if self.steps == 0:
            self._check_not_resharded()
        if self._by_output:
            # Fast path: the magnitudes behind the last running mask, when nothing was recorded since
            # (the step's mask is then bit-identical to it, and no second all-reduce is needed).
            cached = self._fast_gathered
            magnitudes = cached if cached is not None else self._gather_magnitudes()
            keeps = self._keep_masks(magnitudes)
        else:  # ranked per weight, by its gradient, its weight or at random
            magnitudes = self._criterion_scores()
            rule = self.config.keep_rule
            keeps = {name: keep_mask(m, self.config.threshold, rule) for name, m in magnitudes.items()}
        self.reset()
        self._warn_if_nonfinite(magnitudes)
        self.magnitudes = magnitudes
        self.masks = {}
        strict = self.config.mode == "strict"
        for unit in self.units:
            keep = keeps.get(unit.source if self._by_output else unit.name)
            if keep is None:
                continue
            if keep.shape[0] != unit.num_units:
                # A layer whose output is split across ranks (tensor parallelism with local outputs).
                raise RuntimeError(
                    f"MIGU recorded {keep.shape[0]} output units for {unit.name!r}, whose weight has "
                    f"{unit.num_units}. {UNSUPPORTED_SETUP_HELP}"
                )
            self.masks[unit.name] = keep
            if bool(keep.all()):
                continue  # T = 0 or tiny layer: leave the gradient untouched (bit-identical)
            masked_idx = (~keep).nonzero().squeeze(1) if strict else None  # (k,)
            # mask_bias=False: the official code masks weight rows only, biases always move.
            bias = unit.bias if self.config.mask_bias else None
            for param, dim in ((unit.weight, unit.unit_dim), (bias, 0)):
                if param is None or param.grad is None:
                    continue
                if param.grad.shape != param.shape:
                    raise RuntimeError(
                        f"The gradient of {unit.name!r} has shape {tuple(param.grad.shape)}, not the weight's "
                        f"{tuple(param.shape)}. {UNSUPPORTED_SETUP_HELP}"
                    )
                mask_gradient_(param.grad, keep, dim)
                if strict:
                    state = self._optimizer.state.get(param) if self._optimizer is not None else None
                    self._snapshots.extend(snapshot_rows(param, dim, masked_idx, state))
        self.steps += 1
        self._masked_since_step = True

    def _warn_if_nonfinite(self, scores: dict[str, torch.Tensor]) -> None:
        """Warn once when a layer's magnitudes (or scores) hold NaN or inf: its mask is then arbitrary.

        On an accelerator the check reads back one flag, so it runs every 100 steps there; on the CPU
        it is free and runs every step.
        """
        if self._warned_nonfinite or not scores:
            return
        first = next(iter(scores.values()))
        if first.device.type != "cpu" and self.steps % 100:
            return
        bad = [n for n, m in scores.items() if not bool(torch.isfinite(m).all())]
        if bad:
            self._warned_nonfinite = True
            warnings.warn(
                f"MIGU step {self.steps}: the {self.config.criterion} scores of {len(bad)} layer(s) "
                f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}) hold NaN or inf, so their masks are "
                "arbitrary. The forward pass produced non-finite activations: check the learning rate, the "
                "inputs and mixed precision. (Warned once per handle.)",
                RuntimeWarning,
                stacklevel=3,
            )

    def _check_not_resharded(self) -> None:
        """Raise if ``fully_shard`` replaced the model's parameters after ``attach`` (first step only).

        ``fully_shard`` swaps every parameter for a new DTensor one: a handle attached before holds
        the old tensors, whose ``.grad`` never fills, and would silently mask nothing.
        """
        if any(is_dtensor(u.weight) for u in self.units):
            return
        if any(is_dtensor(p) for p in self.model.parameters()):
            raise RuntimeError(
                "The model's parameters became DTensors after migu.attach (fully_shard applied after "
                "attach?): MIGU holds the replaced tensors and would mask nothing. Call migu.attach after "
                "fully_shard and after creating the optimizer."
            )

    def _criterion_scores(self) -> dict[str, torch.Tensor]:
        """Per unit name, ``(d_out,)`` scores under a criterion other than ``"output"``.

        FSDP2-sharded weights hold a block of rows per rank: their weight / gradient scores are
        assembled from every rank's rows by :func:`migu.core.distributed.sharded_row_scores` (a
        collective), so that every rank ranks the same full vector. Random scores need nothing.
        """
        criterion = self.config.criterion
        units = [
            (i, u) for i, u in enumerate(self.units) if criterion != "gradient" or u.weight.grad is not None
        ]
        sharded: dict[str, torch.Tensor] = {}
        if criterion in ("weight", "gradient"):
            sharded = sharded_row_scores([u for _, u in units if is_dtensor(u.weight)], criterion)
        return {
            # index=i: the random criterion's seed is tied to the unit's place among all units
            u.name: sharded[u.name]
            if u.name in sharded
            else unit_scores(u, criterion, seed=self.config.seed, step=self.steps, index=i)
            for i, u in units
        }

    def _keep_masks(self, magnitudes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keep-masks per source; layers of one width are ranked in one batched sort."""
        by_width: dict[int, list[str]] = defaultdict(list)
        for name, m in magnitudes.items():
            by_width[m.shape[0]].append(name)
        keeps: dict[str, torch.Tensor] = {}
        for name in [n for n in magnitudes if n in self.cluster_ids]:  # MIGU + Cluster
            keeps[name] = cluster_keep_mask(magnitudes[name], self.cluster_ids[name], self.config.threshold)
            by_width[magnitudes[name].shape[0]].remove(name)
        for width, names in by_width.items():
            if not names:
                continue
            rule = self.config.keep_rule
            if rule == "count" and num_masked(width, self.config.threshold) == 0:
                keeps.update(
                    {n: torch.ones(width, dtype=torch.bool, device=magnitudes[n].device) for n in names}
                )
                continue
            stacked = torch.stack([magnitudes[n] for n in names])  # (L, width)
            for n, k in zip(names, keep_mask(stacked, self.config.threshold, rule), strict=True):
                keeps[n] = k
        return keeps

    def _before_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if not self._masked_since_step:  # not masked early by the caller
            self.apply_masks()

    def _after_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        self._masked_since_step = False
        if self._snapshots:
            restore_rows(self._snapshots)
            self._snapshots = []

    # ------------------------------------------------------------------ reporting
    @property
    def update_fraction(self) -> float:
        """Fraction of all target rows that were updated in the last step (1.0 before any step)."""
        if not self.masks:
            return 1.0
        kept = sum(int(k.sum()) for k in self.masks.values())
        total = sum(k.numel() for k in self.masks.values())
        return kept / total

    def layer_update_fractions(self) -> dict[str, float]:
        """Per unit name, the fraction of its rows updated in the last step."""
        return {name: float(k.float().mean()) for name, k in self.masks.items()}

    # ------------------------------------------------------------------ lifetime
    def remove(self) -> None:
        """Remove every hook this handle added; the model is exactly as before ``attach``."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._snapshots = []
        for module, method in self._fast_forwards:
            if not uninstall(module, method):
                warnings.warn(
                    f"{type(module).__name__}.forward was replaced again after MIGU's fast path was "
                    "installed; leaving it as it is (the replacement may still call MIGU's).",
                    stacklevel=2,
                )
        self._fast_forwards = []
        self._pending = []
        self._depth = 0
        for unit in self.units:
            for p in (unit.weight, unit.bias):
                if p is not None and _owner(p) is self:
                    del _ATTACHED[id(p)]
        self.reset()
        self._attached = False

    def __enter__(self) -> MiguHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (
            f"MiguHandle(units={len(self.units)}, threshold={self.config.threshold}, mode={self.config.mode!r}, "
            f"enabled={self._enabled}, steps={self.steps})"
        )


def attach(
    model: nn.Module,
    config: MiguConfig | None = None,
    optimizer: Any | None = None,
    process_group: Any | None = None,
) -> MiguHandle:
    """Attach MIGU to ``model``.

    Args:
        model: Any ``nn.Module`` (a transformers model, a PEFT model, a DDP-wrapped model, ...).
        config: What to mask; ``MiguConfig()`` (T = 0.7, attention and FFN layers) by default.
        optimizer: If given, masks are applied automatically right before each ``optimizer.step()``
            (and, in strict mode, masked rows restored right after). Without it, call
            ``handle.apply_masks()`` between ``backward()`` and ``step()``.
        process_group: Data-parallel group over which magnitudes are averaged (default: the world).

    Returns:
        The handle; ``handle.remove()`` (or leaving a ``with`` block) detaches it.

    Raises:
        ValueError: no target layer, a target pattern matching nothing, strict mode without optimizer.
        RuntimeError: attached twice, or a sharded setup MIGU cannot mask (FSDP1, DeepSpeed, tensor
            parallelism); FSDP2 (``fully_shard``) is supported: attach after ``fully_shard``.
    """
    return MiguHandle(model, config if config is not None else MiguConfig(), optimizer, process_group)
