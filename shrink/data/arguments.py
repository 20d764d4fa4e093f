"""The command-line options that say how a dataset is read (`--data`, `--image-size`, `--resize`, ...).

Every command that reads images takes the same options and turns them into a FolderOptions the same
way: for your own images (`imagefolder:DIR`) the input size, the resize before the centre crop, and
the normalization."""

from __future__ import annotations

import argparse

from shrink.data.imagefolder import FolderOptions
from shrink.errors import ShrinkValueError

DATA_HELP = ("fmnist | digits | imagefolder:DIR | synthetic:CxHxW; segmentation: fmnist-seg | segfolder:DIR; "
             "detection: fmnist-det | coco:DIR")
FOLDER_FLAGS = ("image_size", "resize", "mean", "std")  # the argparse names of the imagefolder options


def add_data_arguments(parser: argparse.ArgumentParser, *, default: str | None = "fmnist", required: bool = False,
                       help: str = DATA_HELP) -> None:
    parser.add_argument("--data", default=default, required=required, help=help)
    parser.add_argument("--data-dir", help="directory with the dataset files (Fashion-MNIST IDX .gz)")
    parser.add_argument("--image-size", type=int, metavar="PX",
                        help="imagefolder: the model's input size, cut from the centre of each image (default 224; "
                             "for an ONNX file, read from the file)")
    parser.add_argument("--resize", type=int, metavar="PX",
                        help="imagefolder: shorter side the images are resized to before the centre crop (default "
                             "8/7 of --image-size; equal to it: the whole image, no border cut)")
    parser.add_argument("--mean", type=_floats, metavar="M[,M,M]",
                        help="imagefolder: per-channel mean after scaling pixels to [0, 1] (default ImageNet's)")
    parser.add_argument("--std", type=_floats, metavar="S[,S,S]",
                        help="imagefolder: per-channel std after scaling pixels to [0, 1] (default ImageNet's)")


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 0.5,0.5,0.5; got {text!r}") from exc
    return values


def folder_options(args: argparse.Namespace, *, image_size: int | None = None, channels: int | None = None,
                   ) -> FolderOptions | None:
    """FolderOptions for `imagefolder:` data: the typed options, else the model's own input size
    and channels (`image_size`, `channels`); None for other data, where the options mean nothing."""
    typed = {k: getattr(args, k, None) for k in FOLDER_FLAGS}
    data = getattr(args, "data", None) or ""
    if not data.startswith("imagefolder:"):
        given = [f"--{k.replace('_', '-')}" for k, v in typed.items() if v is not None]
        if given:
            raise ShrinkValueError(f"{', '.join(given)} apply to imagefolder:DIR data, not {data or 'no data'}")
        return None
    channels = channels or (len(typed["mean"]) if typed["mean"] else 3)
    default = FolderOptions()
    return FolderOptions(image_size=typed["image_size"] or image_size or default.image_size, resize=typed["resize"],
                         channels=channels,
                         mean=typed["mean"] or (default.mean if channels == 3 else (0.5,)),
                         std=typed["std"] or (default.std if channels == 3 else (0.5,)))


def typed_folder_options(args: argparse.Namespace) -> dict[str, object]:
    """The folder options the user typed (empty when none was)."""
    return {k: getattr(args, k) for k in FOLDER_FLAGS if getattr(args, k, None) is not None}


def load_for_model(args: argparse.Namespace, split: str, *, input_shape: tuple[int, int, int], num_classes: int,
                   contract=None, task=None):
    """One split of `args.data` for a PyTorch model of `input_shape`: read by the model's own
    preprocessing record (`contract`, from its card) unless the user typed folder options, else by
    those options sized to the model's input."""
    from shrink.data import load_data
    from shrink.data.fits import check_data_task

    if task is not None and args.data:  # the model's task (shrink.tasks.Task): other data is one line, before it is read
        check_data_task(args.data, task)
    options = folder_options(args, image_size=input_shape[1], channels=input_shape[0])
    return load_data(args.data, split, data_dir=getattr(args, "data_dir", None), folder_options=options,
                     synthetic_shape=input_shape, num_classes=num_classes,
                     preprocessing=None if typed_folder_options(args) else contract,
                     image_size=tuple(input_shape[1:]))  # segfolder/coco images are resized to the model's input
