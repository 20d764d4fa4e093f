"""Tiny models and data for the recovery tests: the 8x8 digits set and small convnets built here.

A plain module (not conftest.py) so that tests and the subprocess worker can import it by a name
no other test folder uses.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"


def tiny_net(width: int = 16, classes: int = 10, in_chans: int = 1, size: int = 8) -> nn.Module:
    """Two conv+BN+ReLU blocks and a linear head: learns digits to ~99% in a few CPU seconds."""
    return nn.Sequential(
        nn.Conv2d(in_chans, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Dropout(0.1),  # so determinism and resume also cover the RNG
        nn.Flatten(),
        nn.Linear(width * size * size, classes),
    )


@functools.lru_cache(maxsize=None)
def digits(split: str, limit: int | None = None):
    """The digits split, or its first `limit` images (enough for loop mechanics, and faster)."""
    from shrink.data import load_data

    data = load_data("digits", split)
    return data if limit is None else data.subset(torch.arange(limit))


def save_split(split, path: Path) -> Path:
    """Write a TensorSplit as plain tensors + info, so a subprocess can skip loading the dataset."""
    from dataclasses import asdict

    torch.save({"images": split.images, "labels": split.labels, "info": str(asdict(split.info))}, path)
    return path


def load_split(path: Path):
    import ast

    from shrink.data import DataInfo, TensorSplit

    blob = torch.load(path, weights_only=True)
    return TensorSplit(blob["images"], blob["labels"], DataInfo(**ast.literal_eval(blob["info"])))


def fast_train(**overrides):
    """A training config that fits in a second or two on one CPU core."""
    from shrink.recover import TrainConfig

    base = dict(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0.2, augment=False, device="cpu",
                label_smoothing=0.0)
    return TrainConfig(**{**base, **overrides})


class CrashAt:
    """A criterion that raises at its n-th call: a crash in the middle of an epoch."""

    def __init__(self, n: int) -> None:
        self.calls, self.n = 0, n

    def __call__(self, logits, labels, inputs, indices):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(logits, labels)


def narrow_copy(model: nn.Sequential, keep: int) -> nn.Sequential:
    """A physically narrower copy of tiny_net keeping the first `keep` channels of the first block:
    a stand-in for a pruned model whose BN statistics no longer fit."""
    width = model[0].out_channels
    small = tiny_net(width=width)
    small.load_state_dict(model.state_dict())
    conv0, bn0, conv1 = small[0], small[1], small[3]
    new0 = nn.Conv2d(conv0.in_channels, keep, 3, padding=1)
    new0.weight.data, new0.bias.data = conv0.weight.data[:keep].clone(), conv0.bias.data[:keep].clone()
    newbn = nn.BatchNorm2d(keep)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(newbn, name).data = getattr(bn0, name).data[:keep].clone()
    new1 = nn.Conv2d(keep, conv1.out_channels, 3, padding=1)
    new1.weight.data, new1.bias.data = conv1.weight.data[:, :keep].clone(), conv1.bias.data.clone()
    small[0], small[1], small[3] = new0, newbn, new1
    return small


def trained_tiny(width: int = 16, epochs: int = 2, seed: int = 0) -> nn.Module:
    """tiny_net trained on 640 digits (~95% test accuracy); cached, each caller gets its own copy."""
    import copy

    return copy.deepcopy(_trained_tiny(width, epochs, seed))


@functools.lru_cache(maxsize=None)
def _trained_tiny(width: int, epochs: int, seed: int) -> nn.Module:
    from shrink.recover import fit

    torch.manual_seed(seed)
    model = tiny_net(width)
    fit(model, digits("train", 640), fast_train(epochs=epochs, seed=seed), progress=False)
    return model.eval()


def make_pruned_dir(root: Path, *, classes: int = 10, keep: float = 0.5, train_epochs: int = 1) -> dict:
    """A dense tiny model trained on digits (weights + card) and a `shrink prune` directory made
    from it. Returns the paths: dense (weights file), pruned (directory)."""
    import warnings

    from shrink.fileio import sha256_file
    from shrink.models import ModelCard, ModelCode, ModelSpec, create_model, save_state_dict, write_card
    from shrink.prune import PruneConfig, apply, plan
    from shrink.prune.saving import save_pruned
    from shrink.recover import fit
    from tiny_model import TINY_FACTORY, TINY_FILE

    info = digits("train").info
    code = ModelCode.read(TINY_FILE)
    spec = ModelSpec(name=TINY_FACTORY, num_classes=classes, in_chans=1, input_size=(8, 8), code_sha256=code.sha256)
    torch.manual_seed(0)
    dense = create_model(spec, code=code)
    if classes == 10 and train_epochs:
        fit(dense, digits("train", 640), fast_train(epochs=train_epochs), progress=False)
    dense.eval()
    dense_path = root / "dense" / "tiny.safetensors"
    save_state_dict(dense, dense_path)
    card = ModelCard(architecture=spec, dataset="digits", weights=dense_path.name, sha256=sha256_file(dense_path),
                     mean=info.mean, std=info.std, classes=tuple(str(i) for i in range(classes)))
    write_card(card, dense_path.with_suffix(".json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = plan(dense, torch.randn(2, 1, 8, 8), PruneConfig(ratio=1.0 - keep, round_to=1))
    pruned_dir = root / "pruned"
    save_pruned(pruned_dir, apply(dense, p), p, spec, card=card, source=str(dense_path))
    return {"dense": dense_path, "pruned": pruned_dir}
