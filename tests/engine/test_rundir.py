"""portable_path: what a run records of where its weights came from names no folder of this machine."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from migu.engine.rundir import environment_info, portable_path


def test_package_folder_becomes_site_packages_relative() -> None:
    import torch

    folder = Path(torch.__file__).resolve().parent / "nn"
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    if not folder.is_relative_to(purelib):
        pytest.skip(f"torch is not installed under {purelib}")
    assert portable_path(folder) == "site-packages/torch/nn"


def test_working_directory_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "project"
    (work / "models" / "m").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert portable_path(work / "models" / "m") == "models/m"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert portable_path(tmp_path / "home" / ".cache" / "x") == "~/.cache/x"


def test_other_strings_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert portable_path("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_path("relative/dir") == "relative/dir"
    assert portable_path("/opt/weights") == "/opt/weights"


def test_environment_info_records_the_portable_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    info = environment_info(3, "cpu", 1, str(tmp_path / "weights"))
    assert info["model_source"] == "weights"
    assert info["seed"] == 3
    assert "model_source" not in environment_info(3, "cpu", 1)


def test_environment_info_records_the_processor() -> None:
    import os
    import platform

    info = environment_info(0, "cpu", 1)
    assert info["cpu_count"] == os.cpu_count()
    if Path("/proc/cpuinfo").is_file():  # Linux: the first "model name" line, as the kernel reports it
        names = [
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        assert info["cpu"] == (names[0] if names else (platform.processor() or None))
    else:
        assert info["cpu"] == (platform.processor() or None)
