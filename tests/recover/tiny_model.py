"""A registry-loadable tiny model for the CLI tests: `ModelSpec(name=f"{TINY_FACTORY}")`."""

from __future__ import annotations

from pathlib import Path

TINY_FILE = str(Path(__file__).resolve())
TINY_FACTORY = f"{TINY_FILE}:tiny"


def tiny(num_classes: int = 10, in_chans: int = 1):
    from recover_fixtures import tiny_net

    return tiny_net(width=16, classes=num_classes, in_chans=in_chans)
