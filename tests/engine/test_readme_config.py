"""The README's configuration reference must list exactly the defaults of the code."""

from pathlib import Path

import yaml

from migu.engine.config import RunConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_block_equals_the_defaults():
    text = README.read_text()
    block = text.split("The keys, with their defaults:")[1].split("```yaml")[1].split("```")[0]
    assert yaml.safe_load(block) == RunConfig().to_dict()
