"""migu: continual learning of language models with MIGU (magnitude-based gradient updating).

>>> import migu
>>> handle = migu.attach(model, migu.MiguConfig(threshold=0.7), optimizer=opt)  # doctest: +SKIP
"""

from migu.core import MiguConfig, MiguHandle, attach

__version__ = "0.1.0"
__all__ = ["MiguConfig", "MiguHandle", "attach", "__version__"]
