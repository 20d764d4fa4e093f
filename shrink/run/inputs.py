"""What a run starts from: the dense model and the data, loaded and checked against each other
before any work is done, with the bounded subsets the recipe asks for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shrink.data import load_data
from shrink.data.imagefolder import FolderOptions
from shrink.data.splits import DataInfo
from shrink.errors import ShrinkError
from shrink.fileio import sha256_file
from shrink.models import UNTRAINED_NOTE, LoadedModel, card_path_for, user_model_code
from shrink.load import load_model
from shrink.models.source import ModelSource, SourceKind
from shrink.recipe import DataSection, ModelSection, Recipe
from shrink.data.fits import check_data_task, check_fits, check_model_fits

NORMALIZATION_TOLERANCE = 1e-3  # mean/std that differ by more than this from the card are noted


@dataclass(frozen=True)
class RunInputs:
    dense: LoadedModel
    model_identity: dict[str, Any]  # what the model is, down to the sha256 of its files
    info: DataInfo
    eval: Any  # split: the test images accuracy is measured on (a seeded subset)
    train: Any  # split: the training images for recovery and calibration (a seeded subset)
    data: dict[str, Any]  # dataset, images used and available, seed, synthetic
    notes: tuple[str, ...] = ()  # things the report must mention (e.g. normalization differs)
    select: Any = None  # split: training images held out of recovery, to choose the step that ships


def model_identity(section: ModelSection) -> dict[str, Any]:
    """The model section plus the sha256 of every file it names: a changed file is a changed model."""
    files = {}
    source = ModelSource.parse(section.source)
    read: list[Path] = []
    if source.kind in (SourceKind.WEIGHTS, SourceKind.CARD, SourceKind.CODE):
        read.append(source.path)
    if source.kind is SourceKind.WEIGHTS:
        read.append(card_path_for(source.path))
    for path in read:
        if path.is_file():
            files[str(path)] = sha256_file(path)
    for named in (section.weights, section.code):
        if named and Path(named).is_file():
            files[named] = sha256_file(named)
    return {"section": dict(vars(section)), "files": files}


def load_dense(section: ModelSection) -> LoadedModel:
    source = Path(section.source)
    if source.is_dir():
        raise ShrinkError(f"model.source {source} is a directory; give the dense model (a weights file with its "
                          "card, or a registry name), not a pruned one")
    overrides = section.spec_overrides()
    if overrides and source.suffix in (".safetensors", ".pt", ".pth", ".bin", ".json"):
        raise ShrinkError(f"model.{', model.'.join(overrides)} apply to registry names only; {source} has a card "
                          "that fixes its architecture")
    torch.manual_seed(0)  # a registry model without weights gets the same random init every run
    # The recipe is the user's own word: the code it names (model.source or model.code) may run.
    return load_model(section.source, weights=section.weights, code=user_model_code(section.source, section.code),
                      **overrides)


SELECT_SHARE = 5  # the held-out selection images are at most 1/5 of the training images


def held_out(split, count: int, seed: int):
    """(selection, rest): `count` images drawn with a fixed seed (at most a fifth of the split),
    and the split without them; (None, split) when `count` is 0 or the split too small."""
    count = min(count, len(split) // SELECT_SHARE)
    if count < 1:
        return None, split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed + 1))
    return split.subset(order[:count].sort().values), split.subset(order[count:].sort().values)


def seeded_subset(split, count: int | None, seed: int):
    """`count` images drawn with a fixed seed (sorted, so a folder is read in order), or all."""
    if count is None or count >= len(split):
        return split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count]
    return split.subset(order.sort().values)


def card_record(data: DataSection, dense: LoadedModel):
    """The model card's preprocessing record, when it decides how a folder is read: the recipe
    left data.folder at its defaults and the card has one."""
    if not data.name.startswith("imagefolder:") or data.folder != FolderOptions():
        return None
    return dense.card.preprocessing if dense.card is not None else None


def folder_for(data: DataSection, dense: LoadedModel) -> FolderOptions:
    """`data.folder` as the recipe sets it; left at its defaults, sized to the model's input."""
    c, h, _ = dense.input_shape
    if data.folder == FolderOptions() and c == 3 and h != data.folder.image_size:
        return FolderOptions(image_size=h, num_workers=data.folder.num_workers)
    return data.folder


def _load_split(data: DataSection, which: str, dense: LoadedModel):
    folder = folder_for(data, dense) if data.name.startswith("imagefolder:") else data.folder
    return load_data(data.name, which, data_dir=data.dir, folder_options=folder, preprocessing=card_record(data, dense),
                     synthetic_shape=dense.input_shape, num_classes=dense.spec.num_classes,
                     image_size=tuple(dense.input_shape[1:]))  # segfolder/coco: resized to the model's input


def check_match(dense: LoadedModel, split) -> None:
    """The data fits the model: the same task, the same input shape, as many classes as outputs."""
    task = dense.spec.predicts
    check_fits(split.info, task=task)
    check_fits(split.info, input_shape=dense.input_shape, remedy="choose data that matches the model"
               + (" (or set model.in_chans / model.input_size)" if dense.card is None else ""))
    check_model_fits(dense.model, split, task=task)


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= NORMALIZATION_TOLERANCE for x, y in zip(a, b))


def _notes(dense: LoadedModel, info: DataInfo) -> tuple[str, ...]:
    """What the report must say about the inputs: untrained weights, and what differs between the
    model card and the data (not an error: a model may be evaluated on other data on purpose)."""
    notes = [f"{dense.source}: {UNTRAINED_NOTE}; its accuracy figures mean nothing"] if dense.untrained else []
    card = dense.card
    if card is None or info.synthetic:
        return tuple(notes)
    if not (_close(card.mean, info.mean) and _close(card.std, info.std)):
        notes.append(f"the model card normalizes with mean {list(card.mean)} std {list(card.std)}, the data with "
                     f"mean {list(info.mean)} std {list(info.std)}; the data's are used")
    if tuple(card.classes) != tuple(info.classes):
        notes.append(f"the model card's class names differ from {info.name}'s; {info.name}'s are used")
    return tuple(notes)


def _folder_note(data: DataSection, dense: LoadedModel) -> tuple[str, ...]:
    """A folder read with the default resize cuts the border off every image (torchvision's ImageNet
    evaluation): right for a model trained that way, a hidden loss for one trained on whole images.
    Where the model's card gave the record, the note says so instead."""
    if not data.name.startswith("imagefolder:"):
        return ()
    record = card_record(data, dense)
    if record is not None:
        return ("data.folder is not set, so the images were read by the preprocessing record on the model's card "
                f"({'; '.join(record.steps()[1:3])})",)
    folder = folder_for(data, dense)
    if folder.resize is not None:
        return ()
    record = folder.preprocessing()
    return (f"data.folder.resize is not set, so every image was resized to {record.resize} px (shorter side) and "
            f"its centre {record.crop[1]}x{record.crop[0]} cut out, torchvision's ImageNet evaluation; if the model "
            f"was trained on whole images, set data.folder.resize to {record.crop[0]}",)


def load_inputs(recipe: Recipe) -> RunInputs:
    """Load and check the model and the data (seconds); every mismatch is an error here, before
    the run directory is touched."""
    dense = load_dense(recipe.model)
    untrainable = getattr(dense.model, "untrainable", None)
    if untrainable and recipe.recover is not None and recipe.recover.train is not None:
        raise ShrinkError(f"{untrainable}: set recover.train: null in the recipe")
    check_data_task(recipe.data.name, dense.spec.predicts)  # before its images are read the model's way
    test = _load_split(recipe.data, "test", dense)
    check_match(dense, test)
    train = _load_split(recipe.data, "train", dense)
    eval_split = seeded_subset(test, recipe.data.eval_images, recipe.data.seed)
    select, train_pool = (None, train) if test.info.synthetic else held_out(train, recipe.data.select_images,
                                                                           recipe.data.seed)
    train_split = seeded_subset(train_pool, recipe.data.train_images, recipe.data.seed)
    data = {
        "dataset": test.info.name,
        "synthetic": test.info.synthetic,
        "eval_split": "test",
        "eval_images": len(eval_split),
        "test_images_available": len(test),
        "train_images": len(train_split),
        "train_images_available": len(train),
        "select_images": len(select) if select is not None else 0,
        "seed": recipe.data.seed,
    }
    if test.info.note:  # data composed for the purpose says what it is made of, in every report
        data["note"] = test.info.note
    return RunInputs(dense=dense, model_identity=model_identity(recipe.model), info=test.info, eval=eval_split,
                     train=train_split, data=data, notes=_notes(dense, test.info) + _folder_note(recipe.data, dense),
                     select=select)
