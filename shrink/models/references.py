"""The trained reference models that ship inside the package (shrink/references/).

Their registry names resolve to these weights, so `shrink eval fmnist_resnet18` measures the trained model from
any directory, installed from a wheel or not."""

from __future__ import annotations

from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "references"


def reference_card(name: str) -> Path | None:
    """The card of the shipped weights for registry name `name`, or None when none ship."""
    if "/" in name or ":" in name or name.startswith("."):
        return None
    card = REFERENCE_DIR / f"{name}.json"
    return card if card.is_file() else None


def reference_names() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))
