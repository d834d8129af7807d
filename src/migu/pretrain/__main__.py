"""``python -m migu.pretrain [CONFIG] [key=value ...]``: the same as ``migu pretrain``."""

import sys

from migu.pretrain.cli import main_pretrain

sys.exit(main_pretrain(sys.argv[1:]))
