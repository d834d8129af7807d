"""Configuration of MIGU gradient masking.

The fields follow the paper (arXiv 2406.17245) and the official code; every place where the two
differ is a field, with the official behaviour as the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CRITERIA", "KEEP_RULES", "MODE_CHOICES", "MiguConfig", "NORMALIZE_CHOICES", "TARGET_PRESETS"]

#: Keyword values accepted by ``MiguConfig.targets`` besides explicit name patterns.
TARGET_PRESETS = ("default", "all-linear")
#: ``"none"``: sum of |y| over tokens (official code). ``"token"``: each token's |y| divided by its
#: L1 norm over the output units before summing (the paper's "L1-normalized magnitude").
NORMALIZE_CHOICES = ("none", "token")
#: The importance criteria of the mask (:mod:`migu.core.criteria`): ``"output"`` is MIGU; the
#: others are the paper's Table 11 ablations.
CRITERIA = ("output", "gradient", "weight", "random")
#: How the threshold ``T`` becomes a mask (:func:`migu.core.mask.keep_mask`). ``"count"``: exactly
#: ``floor(T * d_out)`` units masked, ties broken by index. ``"quantile"``: the official code's rule,
#: units with ``m >= torch.quantile(m, T)`` kept (usually one unit fewer masked, all tied units kept).
KEEP_RULES = ("count", "quantile")
#: ``"grad"``: masked gradient rows are zeroed (official code; the optimizer's momentum and weight
#: decay may still move them). ``"strict"``: masked rows and their optimizer state do not change.
MODE_CHOICES = ("grad", "strict")


@dataclass
class MiguConfig:
    """What MIGU masks and how.

    Args:
        threshold: Fraction ``T`` in ``[0, 1)`` of each layer's output units whose gradient rows are
            masked: the ``floor(T * d_out)`` units with the smallest output magnitude. Paper: 0.7 for
            FT/LoRA/IncLoRA, 0.4 for LoRA replay, 0.1 (text) or 0.05 (appendix) for O-LoRA.
            ``T = 0`` masks nothing and is bit-identical to training without MIGU.
        targets: Which layers. ``"default"``: every trainable linear layer inside the repeated
            blocks of the model (attention and FFN; heads such as ``lm_head``, ``classifier``,
            ``pooler`` and embeddings are left out; a model without repeated blocks gets all its
            non-head linear layers). ``"all-linear"``: every trainable linear
            layer, heads included (the official code masks ``lm_head``). A list of names: a layer
            is targeted when its qualified name equals a name or ends with ``"." + name`` (as PEFT's
            ``target_modules``). A single other string: a regular expression that must match the
            whole qualified name.
        exclude: Name patterns (same suffix rule as a list of ``targets``) removed from the targets.
        normalize: Magnitude statistic, one of ``NORMALIZE_CHOICES``.
        ignore_padding: If true, padded positions (``attention_mask == 0``) do not count in the
            magnitudes. The mask is read from the ``attention_mask`` / ``decoder_attention_mask``
            keyword arguments of the model's forward call, or set with ``handle.set_token_mask``.
        mode: One of ``MODE_CHOICES``.
        sync_distributed: Average the magnitudes across data-parallel ranks before taking the mask
            (when ``torch.distributed`` is initialized), so every rank applies the same mask.
        criterion: What ranks the output units (``migu.core.criteria``): ``"output"`` (MIGU), or
            the paper's ablations ``"gradient"``, ``"weight"``, ``"random"``.
        seed: Seed of the ``"random"`` criterion and of the k-means of ``clusters``.
        clusters: MIGU + Cluster (paper Appendix E): group each layer's output units into this many
            k-means clusters and mask whole clusters (``0``: off). Needs ``criterion="output"``.
        cluster_by: ``"weight"`` (k-means over weight rows, at attach) or ``"magnitude"``
            (co-magnitude profiles from ``handle.fit_clusters(batches)``).
        keep_rule: How ``T`` becomes a mask (:data:`migu.core.mask.KEEP_RULES`): ``"count"`` masks
            exactly ``floor(T * d_out)`` units (ties by index); ``"quantile"`` keeps
            ``m >= torch.quantile(m, T)`` as the official code (usually one unit fewer masked, ties
            kept). ``"quantile"`` needs ``fast_path=False`` and ``clusters=0``.
        mask_bias: Mask a layer's bias entries with its weight rows. ``False``: the official code's
            choice (weight rows only; biases always move). ``False`` needs ``fast_path=False``.
        fast_path: Compute, in the backward of each ``nn.Linear`` / ``Conv1D`` target, the weight
            gradient of the kept rows only (``migu.core.fast_path``): about ``T`` of the
            weight-gradient product skipped. The mask of each micro-batch is the running mask of
            the step so far (the step's own mask with one micro-batch per step); other layers
            keep the dense path. Needs ``criterion="output"``. Works with either ``mode``.

    Raises:
        ValueError: a field is out of range or not one of its choices.
    """

    threshold: float = 0.7
    targets: str | Sequence[str] = "default"
    exclude: Sequence[str] = field(default_factory=tuple)
    normalize: str = "none"
    ignore_padding: bool = False
    mode: str = "grad"
    sync_distributed: bool = True
    criterion: str = "output"
    seed: int = 0
    clusters: int = 0
    cluster_by: str = "weight"
    keep_rule: str = "count"
    mask_bias: bool = True
    fast_path: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise ValueError(f"MiguConfig.threshold must be a number in [0, 1), got {self.threshold!r}.")
        if not 0.0 <= float(self.threshold) < 1.0:
            raise ValueError(
                f"MiguConfig.threshold={self.threshold} is out of range: it is the fraction of output "
                "units whose gradient is masked and must lie in [0, 1) (the paper uses 0.7 for full "
                "fine-tuning and LoRA). Use 0 to mask nothing."
            )
        self.threshold = float(self.threshold)
        if self.normalize not in NORMALIZE_CHOICES:
            raise ValueError(
                f"MiguConfig.normalize={self.normalize!r} is not one of {NORMALIZE_CHOICES}: "
                "'none' sums |y| over tokens (official code), 'token' L1-normalizes each token first."
            )
        if self.mode not in MODE_CHOICES:
            raise ValueError(
                f"MiguConfig.mode={self.mode!r} is not one of {MODE_CHOICES}: 'grad' zeroes masked "
                "gradient rows (official code), 'strict' also keeps their weights and optimizer state."
            )
        if self.criterion not in CRITERIA:
            raise ValueError(
                f"MiguConfig.criterion={self.criterion!r} is not one of {CRITERIA}: 'output' is MIGU; "
                "'gradient', 'weight' and 'random' are the paper's Table 11 ablations."
            )
        if isinstance(self.clusters, bool) or not isinstance(self.clusters, int) or self.clusters < 0:
            raise ValueError(f"MiguConfig.clusters={self.clusters!r} must be an int >= 0 (0: no clustering).")
        if self.cluster_by not in ("weight", "magnitude"):
            raise ValueError(
                f"MiguConfig.cluster_by={self.cluster_by!r} is not one of ('weight', 'magnitude')."
            )
        if self.clusters and self.criterion != "output":
            raise ValueError(
                "MiguConfig.clusters needs criterion='output' (clusters are ranked by output magnitude)."
            )
        if not isinstance(self.fast_path, bool):
            raise ValueError(f"MiguConfig.fast_path must be True or False, got {self.fast_path!r}.")
        if self.fast_path and self.criterion != "output":
            raise ValueError(
                f"MiguConfig(fast_path=True) needs criterion='output', got {self.criterion!r}: the fast path "
                "masks each layer's weight gradient in its backward, so the mask must be known after the "
                "forward from output magnitudes ('gradient' is only known after the backward)."
            )
        if self.keep_rule not in KEEP_RULES:
            raise ValueError(
                f"MiguConfig.keep_rule={self.keep_rule!r} is not one of {KEEP_RULES}: 'count' masks exactly "
                "floor(T * d_out) units, 'quantile' keeps m >= torch.quantile(m, T) (official code)."
            )
        if not isinstance(self.mask_bias, bool):
            raise ValueError(f"MiguConfig.mask_bias must be True or False, got {self.mask_bias!r}.")
        if self.fast_path and (self.keep_rule != "count" or not self.mask_bias):
            raise ValueError(
                "MiguConfig(fast_path=True) needs keep_rule='count' and mask_bias=True (the fast path "
                "computes a fixed number of kept rows, bias included); set fast_path=False for the "
                "official rule."
            )
        if self.clusters and self.keep_rule != "count":
            raise ValueError("MiguConfig.clusters needs keep_rule='count' (clusters are masked by count).")
        if isinstance(self.targets, str):
            if not self.targets:
                raise ValueError("MiguConfig.targets is empty: use 'default', 'all-linear' or name patterns.")
        else:
            self.targets = tuple(self.targets)
            if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
                raise ValueError(
                    f"MiguConfig.targets={self.targets!r} must be 'default', 'all-linear', a regular "
                    "expression, or a non-empty list of non-empty layer names."
                )
        if isinstance(self.exclude, str):
            self.exclude = (self.exclude,)
        self.exclude = tuple(self.exclude)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict of the fields (for run directories and logs)."""
        d = asdict(self)
        d["targets"] = self.targets if isinstance(self.targets, str) else list(self.targets)
        d["exclude"] = list(self.exclude)
        return d
