"""The MIGU method: configuration, magnitudes, masks, the attach handle, distributed agreement."""

from migu.core.config import MiguConfig
from migu.core.handle import MiguHandle, attach
from migu.core.magnitude import output_magnitude
from migu.core.mask import keep_mask, num_masked

__all__ = ["MiguConfig", "MiguHandle", "attach", "keep_mask", "num_masked", "output_magnitude"]
