"""`shrink train` (a model from scratch: weights + card) and `shrink finetune` (recover the
accuracy of a pruned directory written by `shrink prune`).

`shrink train` trains classifiers, segmenters (tvseg:) and detectors (tvdet:) alike: the model's
task picks the loss and the metric (shrink.recover.objectives), the data must be of that task
(refused in one line before anything trains), and dense tasks train without crop/flip
augmentation, which would move the pixels but not the masks or boxes."""

from __future__ import annotations

import argparse
import contextlib
import shlex
from dataclasses import replace
from pathlib import Path

import torch

from shrink.data import SCENE_TASKS, load_data, train_val_split
from shrink.data.arguments import folder_options
from shrink.data.fits import check_fits, check_model_fits
from shrink.models.arguments import spec_overrides
from shrink.dirlock import directory_lock
from shrink.errors import ShrinkError
from shrink.fileio import check_not_inputs, check_writable, sha256_file
from shrink.models import (ModelCard, apply_state_dict, create_model, default_spec, load_state_dict, save_state_dict,
                           user_model_code, write_card)
from shrink.recover.config import TrainConfig
from shrink.recover.distributed import distributed_session, main_process_by_env
from shrink.recover.loop import fit, resolve_device
from shrink.tasks import Task

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def training_command(args: argparse.Namespace) -> str:
    """The command that reproduces this training, with every option that affects it spelled out."""
    words = ["shrink", "train", args.model, "--data", args.data, "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--optimizer", args.optimizer, "--lr", str(args.lr),
             "--weight-decay", str(args.weight_decay), "--schedule", args.schedule,
             "--label-smoothing", str(args.label_smoothing), "--val-fraction", str(args.val_fraction),
             "--seed", str(args.seed), "--save-dtype", args.save_dtype, "--out", args.out]
    if args.cifar_stem:
        words.append("--cifar-stem")
    for flag in ("num_classes", "in_chans", "task", "scenes", "image_size", "resize"):
        if getattr(args, flag, None) is not None:
            words += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if getattr(args, "input_size", None) is not None:  # (H, W) as the flag reads it
        words += ["--input-size", "x".join(map(str, args.input_size))]
    for flag in ("mean", "std"):
        if getattr(args, flag, None) is not None:
            words += [f"--{flag}", ",".join(map(str, getattr(args, flag)))]
    return shlex.join(words)


def run_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ShrinkError(f"--out {out} exists and is not a directory")
    weights_path = out / "model.safetensors"
    if weights_path.exists() and not args.force:
        raise ShrinkError(f"{weights_path} already exists; use another --out or --force to retrain")
    check_writable(out, directory=True)
    code = user_model_code(args.model)  # a file.py:factory name the user typed; its sha256 goes on the card
    check_not_inputs([weights_path, weights_path.with_suffix(".json")], (code.path,) if code else ())
    # One writer: a second training into --out is refused. Under torchrun only rank 0 writes, and locks.
    with directory_lock(out, "train") if main_process_by_env() else contextlib.nullcontext():
        return _train_locked(args, out, weights_path, code)


def _train_locked(args: argparse.Namespace, out: Path, weights_path: Path, code) -> int:
    from shrink.evaluate import evaluate_torch

    # a tvseg:/tvdet: name says what it predicts, a file.py model's --task; others are classifiers
    task = default_spec(args.model, task=args.task).predicts
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                         weight_decay=args.weight_decay, schedule=args.schedule, label_smoothing=args.label_smoothing,
                         seed=args.seed, device=args.device, augment=task is Task.CLASSIFICATION)
    options = folder_options(args, image_size=args.input_size[0] if args.input_size else None,
                             channels=args.in_chans)
    if args.scenes is not None and args.data not in SCENE_TASKS:
        raise ShrinkError(f"--scenes applies to {' and '.join(SCENE_TASKS)}, not {args.data}")
    train = load_data(args.data, "train", data_dir=args.data_dir, folder_options=options, scenes=args.scenes)
    test = load_data(args.data, "test", data_dir=args.data_dir, folder_options=options, scenes=args.scenes)
    if train.info.synthetic:
        raise ShrinkError("refusing to train on synthetic data: the weights would be meaningless")
    info = train.info
    check_fits(info, task=task)  # before the model is sized by data it could not learn from
    from_data = {"num_classes": info.num_classes, "in_chans": info.in_chans, "input_size": tuple(info.image_size)}
    differ = [f"--{k.replace('_', '-')} {v} (the data has {from_data[k]})" for k, v in spec_overrides(args).items()
              if k in from_data and (tuple(v) if k == "input_size" else v) != from_data[k]]
    if differ:
        raise ShrinkError(f"the model is sized by its training data; {', '.join(differ)} cannot hold"
                          + ("; for your own images set --image-size" if info.name.startswith("imagefolder:") else ""))
    spec = default_spec(args.model, **from_data, task=args.task)
    if args.cifar_stem:
        spec = replace(spec, cifar_stem=True)
    if code is not None:
        spec = replace(spec, code_sha256=code.sha256)
    torch.manual_seed(config.seed)
    model = create_model(spec, code=code)
    check_model_fits(model, train, task=task)  # outputs of another task's shape: one line, before training
    with distributed_session(config.device) as ctx:  # a no-op unless started by torchrun
        device = resolve_device(config.device, ctx)
        if hasattr(train, "to"):
            train, test = train.to(device), test.to(device)
        val = None
        if args.val_fraction:
            train, val = train_val_split(train, args.val_fraction, seed=config.seed)
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
        run_id = f"{spec.to_dict()}|{info.name}|{args.val_fraction}" + (f"|{args.scenes}" if args.scenes else "")
        result = fit(model, train, config, val_split=val, checkpoint_dir=out / "checkpoints", run_id=run_id,
                     task=task)
    if not ctx.is_main:
        return 0  # only rank 0 writes

    dtype = STORAGE_DTYPES[args.save_dtype]
    save_state_dict(model, weights_path, dtype=dtype)
    # The card's accuracy is that of the file as stored (after any fp16 conversion), re-read from disk.
    stored = apply_state_dict(create_model(spec, code=code), load_state_dict(weights_path), source=str(weights_path))
    score = evaluate_torch(stored, test, device=device, source=str(weights_path), task=task)
    accuracy = score.accuracy
    import onnxruntime
    import torchvision

    card = ModelCard(
        architecture=spec, dataset=info.name, weights=weights_path.name, sha256=sha256_file(weights_path),
        mean=info.mean, std=info.std, classes=info.classes, test_accuracy=round(accuracy, 2),
        preprocessing=info.contract,
        training_command=training_command(args),
        seed=config.seed, epochs=config.epochs, storage_dtype=args.save_dtype,
        versions={"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "onnxruntime": onnxruntime.__version__, "device": device},
    )
    write_card(card, weights_path.with_suffix(".json"))
    print(f"test {score.metric} {accuracy:.2f}% after {result.epochs_run} epochs ({result.seconds:.0f}s); "
          f"wrote {weights_path} and {weights_path.with_suffix('.json')}")
    return 0


def register(subparsers) -> None:
    from shrink.config_flags import add_config_flag
    from shrink.recover.config import RecoverConfig
    from shrink.subcommand import add_command
    from shrink.data.arguments import add_data_arguments
    from shrink.models.arguments import add_spec_arguments
    from shrink.recover.finetune import register_finetune

    p = add_command(subparsers, "train", help="train a model from scratch (CPU or GPU); writes weights + card",
                    example="shrink train fmnist_resnet18 --data fmnist --epochs 15 --out runs/ref", func=run_train)
    p.add_argument("model", help="registry name (see `shrink models`)")
    add_data_arguments(p, help="fmnist | digits | imagefolder:DIR; segmentation (a tvseg: model): fmnist-seg; "
                               "detection (a tvdet: model): fmnist-det")
    p.add_argument("--scenes", type=int, metavar="N",
                   help="fmnist-seg/fmnist-det: compose N scenes for each split (default 6000 train, 1000 test)")
    add_spec_arguments(p)
    add_config_flag(p, TrainConfig, "epochs")
    add_config_flag(p, TrainConfig, "batch_size")
    add_config_flag(p, TrainConfig, "optimizer", "sgd | adamw")
    add_config_flag(p, TrainConfig, "lr", "peak learning rate")
    add_config_flag(p, TrainConfig, "weight_decay")
    add_config_flag(p, TrainConfig, "schedule", "onecycle | cosine (both with warmup)")
    add_config_flag(p, TrainConfig, "label_smoothing")
    add_config_flag(p, RecoverConfig, "val_fraction", "hold out this much of train for validation")
    p.add_argument("--cifar-stem", action="store_true", help="stride-1 3x3 first conv, no max-pool (small images)")
    add_config_flag(p, TrainConfig, "seed")
    add_config_flag(p, TrainConfig, "device", "auto | cpu | cuda")
    p.add_argument("--save-dtype", default="float32", choices=sorted(STORAGE_DTYPES))
    p.add_argument("--out", required=True, help="output directory (re-running resumes from its checkpoint)")
    p.add_argument("--force", action="store_true", help="retrain even if --out already holds weights")
    register_finetune(subparsers, add_command)
