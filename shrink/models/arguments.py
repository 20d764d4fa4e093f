"""The command-line options that set a registry model's architecture (`--num-classes`, ...).

`--num-classes`, `--in-chans`, `--input-size` and `--task` apply to `tv:`, `tvseg:`, `tvdet:`, `timm:`
and `file.py:factory` names (a card or a plan already fixes the architecture), and what they set is
recorded next to the outputs (the plan, the card, the ONNX metadata), so later commands need none
of them."""

from __future__ import annotations

import argparse
import re
from typing import Any

from shrink.tasks import Task

SPEC_FLAGS = ("num_classes", "in_chans", "input_size", "task")


def parse_size(text: str) -> tuple[int, int]:
    """'64' -> (64, 64); '64x48' -> (64, 48) as (H, W)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 64x48 (H x W), got {text!r}")
    h = int(match.group(1))
    return h, int(match.group(2) or h)


def add_model_arguments(parser: argparse.ArgumentParser, model_help: str, weights_help: str) -> None:
    """MODEL, --weights and --model-code: how every command that loads a PyTorch model names it."""
    from shrink.models.code import MODEL_CODE_HELP

    parser.add_argument("model", help=model_help)
    parser.add_argument("--weights", help=weights_help)
    parser.add_argument("--model-code", metavar="FILE", help=MODEL_CODE_HELP)


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-classes", type=int, metavar="N",
                        help="outputs of a tv:/timm:/file.py model (default 1000; a card or plan fixes it)")
    parser.add_argument("--in-chans", type=int, metavar="C", help="input channels of a tv:/timm:/file.py model "
                                                                  "(default 3)")
    parser.add_argument("--input-size", type=parse_size, metavar="H[xW]",
                        help="input size of a tv:/timm:/file.py model (default 224)")
    parser.add_argument("--task", choices=[t.value for t in Task],
                        help="what a file.py model predicts (default classification; tvseg:/tvdet: names imply "
                             "theirs; see docs/tasks.md)")


def spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags the user typed, as ModelSpec fields."""
    return {k: getattr(args, k) for k in SPEC_FLAGS if getattr(args, k, None) is not None}
