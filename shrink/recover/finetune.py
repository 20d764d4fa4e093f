"""`shrink finetune PRUNED_DIR --out DIR`: recover the accuracy of a model written by `shrink prune`.

The output is a pruned directory again (plan.json + pruned.safetensors, so `load_model` and every
later stage read it as before) plus recovery.json with the typed result. Weights are written
before plan.json, both atomically, and the input directory is never written to. A rerun with the
same arguments resumes from OUT/checkpoints; one with other arguments is refused there.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from pathlib import Path

import torch

from shrink.errors import ShrinkError
from shrink.models import UNTRAINED_NOTE
from shrink.models.code import MODEL_CODE_HELP, ModelCode
from shrink.data.fits import check_fits
from shrink.dirlock import directory_lock
from shrink.fileio import check_not_inputs, check_writable, read_json, sha256_file, write_json_atomic
from shrink.pruned_files import PLAN_FILE, WEIGHTS_FILE
from shrink.recover.config import DistillConfig, RecoverConfig, TrainConfig, default_distill, default_finetune

EXAMPLE = "shrink finetune runs/r18-p50 --data fmnist --epochs 5 --distill --out runs/r18-p50-kd"
RESULT_FILE = "recovery.json"
RECONSTRUCT_IMAGES = 512  # --reconstruct's default, as in the default recipe (docs/recovery.md)


def check_pruned_dir(directory: Path) -> dict:
    """The plan document of a pruned directory, or a one-line error saying what is missing."""
    if not directory.is_dir():
        raise ShrinkError(f"{directory} is not a directory; give the output directory of `shrink prune`")
    if not (directory / PLAN_FILE).is_file():
        raise ShrinkError(f"{directory} has no {PLAN_FILE}: not a pruned model directory (write one with `shrink prune`)")
    document = read_json(directory / PLAN_FILE, "prune plan")
    weights = directory / document.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise ShrinkError(f"{directory} has {PLAN_FILE} but no weights {weights.name}; rerun `shrink prune`")
    if document.get("mode", "structured") != "structured":
        raise ShrinkError(f"{directory} holds an unstructured (masked) model; fine-tuning would refill its zeros")
    return document


def check_output_dir(out: Path, pruned_dir: Path, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse to write into the input, over any file read (`inputs`), where nothing can be written,
    or over finished results without --force. Leftover checkpoints of an interrupted run are fine:
    the run resumes from them."""
    if out.exists() and not out.is_dir():
        raise ShrinkError(f"--out {out} exists and is not a directory")
    if out.resolve() == pruned_dir.resolve():
        raise ShrinkError("--out is the input directory; write the fine-tuned model to another directory")
    check_writable(out, directory=True)
    check_not_inputs([out / name for name in (WEIGHTS_FILE, PLAN_FILE, RESULT_FILE)], inputs)
    if (out / WEIGHTS_FILE).exists() and not force:
        raise ShrinkError(f"{out} already holds fine-tuned weights; use another --out or --force")


def resolve_teacher(args: argparse.Namespace, document: dict, pruned_dir: Path, code):
    """--teacher, or the dense model the plan was made from (its `source`)."""
    from shrink.models import user_model_code
    from shrink.load import load_model

    if not args.teacher:
        return resolve_dense(document, pruned_dir, "give --teacher MODEL", code)
    source = args.teacher
    loaded = load_model(source, code=user_model_code(source, args.model_code))
    if Path(source).resolve() == pruned_dir.resolve():
        raise ShrinkError("--teacher is the pruned model itself; give the dense model")
    return loaded, source


def resolve_dense(document: dict, pruned_dir: Path, remedy: str, code):
    """The dense model the plan was made from (its `source`), with a one-line error naming `remedy`.
    The source is a name read from the plan, so only the user's `code` may build it."""
    from shrink.models import ModelSpec
    from shrink.load import load_model
    from shrink.models.code import code_for_record

    source = document.get("source") or ""
    if not source:
        raise ShrinkError(f"{pruned_dir / PLAN_FILE} does not name the dense model; {remedy}")
    weights = document.get("source_weights")
    if weights:  # a registry name loaded with --weights: the plan recorded both, and the architecture
        if not Path(weights).is_file():
            raise ShrinkError(f"the dense weights {weights} recorded by {pruned_dir / PLAN_FILE} are not there "
                              f"any more; {remedy}")
        if document.get("source_weights_sha256") and sha256_file(weights) != document["source_weights_sha256"]:
            raise ShrinkError(f"{weights} changed since {pruned_dir / PLAN_FILE} was made from it; {remedy}")
        spec = ModelSpec.from_dict(document["model"])
        code = code_for_record(f"the pruned model {pruned_dir}", spec.name, spec.code_sha256, code)
        overrides = {k: getattr(spec, k) for k in ("num_classes", "in_chans", "input_size", "cifar_stem")}
        return load_model(spec.name, weights=weights, code=code, **overrides), source
    if pruned_from_untrained(document):
        raise ShrinkError(f"the dense model {source!r} named by {pruned_dir / PLAN_FILE} is not a file here "
                          f"and was pruned without --weights (a registry name has no trained weights); {remedy}")
    return load_model(source, code=code), source


def pruned_from_untrained(document: dict) -> bool:
    """Whether a plan was made from a registry architecture that had no trained weights: neither a
    file, nor a shipped reference, nor loaded with --weights."""
    from shrink.models.references import reference_card

    source = document.get("source") or ""
    if not source or document.get("source_weights") or reference_card(source) is not None:
        return False
    from shrink.models.code import is_code_name

    return is_code_name(source) or source.startswith(("tv:", "timm:")) or not Path(source).exists()


def first_scenes(split, count: int):
    """The first `count` scenes of a composed split: the same scenes `load_data(..., scenes=count)`
    composes (shrink.data.scenes draws scene after scene from one generator)."""
    from shrink.data import SCENE_TASKS

    if split.info.name not in SCENE_TASKS:
        raise ShrinkError(f"--scenes applies to {' and '.join(SCENE_TASKS)}, not {split.info.name}")
    if count < 1:
        raise ShrinkError(f"--scenes must be >= 1, got {count}")
    return split.subset(torch.arange(min(count, len(split))))


def recover_config(args: argparse.Namespace) -> RecoverConfig:
    train = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing, grad_clip=args.grad_clip, augment=args.augment,
        seed=args.seed, device=args.device, early_stopping_patience=args.patience, ema_epochs=args.ema_epochs,
    )
    distill = None
    if args.distill:
        layers = tuple(n for n in (args.feature_layers or "").split(",") if n)
        distill = DistillConfig(temperature=args.temperature, alpha=args.alpha, feature_layers=layers,
                                feature_weight=args.feature_weight if layers else 0.0)
    if args.reconstruct and args.reconstruct_images < 2:
        raise ShrinkError(f"--reconstruct-images must be in [2, 2000], got {args.reconstruct_images}")
    return RecoverConfig(bn_recal=not args.no_bn_recal, bn_recal_images=args.bn_images, train=train,
                         distill=distill, val_fraction=args.val_fraction,
                         reconstruct_images=args.reconstruct_images if args.reconstruct else 0)


def run_finetune(args: argparse.Namespace) -> int:
    from shrink.recover.distributed import main_process_by_env

    pruned_dir, out = Path(args.pruned_dir), Path(args.out)
    document = check_pruned_dir(pruned_dir)
    check_output_dir(out, pruned_dir, args.force)
    config = recover_config(args)  # bad values fail here, before anything is loaded
    # One writer: a second finetune into --out is refused. Under torchrun only rank 0 writes, and locks.
    lock = directory_lock(out, "finetune") if main_process_by_env() else contextlib.nullcontext()
    with lock:
        return _finetune_locked(args, pruned_dir, out, document, config)


def _finetune_locked(args: argparse.Namespace, pruned_dir: Path, out: Path, document: dict,
                     config: RecoverConfig) -> int:
    from shrink.data.arguments import load_for_model
    from shrink.models import save_state_dict
    from shrink.load import load_model
    from shrink.recover.api import recover
    from shrink.recover.distributed import distributed_session, resolve_device

    code = ModelCode.read(args.model_code) if args.model_code else None
    loaded = load_model(str(pruned_dir), code=code)
    # The images are read by the model's own preprocessing record (its card), unless typed otherwise.
    read = dict(input_shape=loaded.input_shape, num_classes=loaded.spec.num_classes,
                contract=loaded.card.contract if loaded.card else None)
    train, test = load_for_model(args, "train", **read), load_for_model(args, "test", **read)
    if args.scenes is not None:
        train, test = first_scenes(train, args.scenes), first_scenes(test, args.scenes)
    if train.info.synthetic:
        raise ShrinkError("refusing to fine-tune on synthetic data: the weights would be meaningless")
    task = loaded.spec.predicts
    check_fits(train.info, input_shape=loaded.spec.input_shape, num_outputs=loaded.spec.num_classes,
               remedy="fine-tune on the dataset the model was trained for", task=task)
    teacher, teacher_source = (resolve_teacher(args, document, pruned_dir, code) if args.distill else (None, None))
    check_output_dir(out, pruned_dir, args.force, loaded.files + (teacher.files if teacher else ()))
    plan, dense = None, None
    if config.reconstruct_images:
        from shrink.prune.plan import PrunePlan

        plan = PrunePlan.from_dict(document)
        # Reconstruction fits the layers to the model the plan was made from, whatever the teacher.
        dense = (teacher if teacher is not None and teacher_source == document.get("source")
                 else resolve_dense(document, pruned_dir, "--reconstruct needs the dense weights the plan was made from",
                                    code)[0]).model
    if pruned_from_untrained(document):
        print(f"warning: {pruned_dir} was pruned from {document.get('source')} without --weights: {UNTRAINED_NOTE}; "
              "what it learns here starts from random weights", file=sys.stderr)
    run_id = "|".join([
        "finetune", document.get("weights_sha256") or sha256_file(pruned_dir / WEIGHTS_FILE), train.info.name,
        str(teacher_source), hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16],
    ] + ([f"scenes={args.scenes}"] if args.scenes is not None else []))
    with distributed_session(config.train.device) as ctx:  # a no-op unless started by torchrun
        device = resolve_device(config.train.device, ctx)
        train, test = train.to(device), test.to(device)
        result = recover(loaded.model, teacher.model if teacher else None, train, config, eval_split=test,
                         checkpoint_dir=out / "checkpoints", run_id=run_id, teacher_cache=not args.no_teacher_cache,
                         plan=plan, dense=dense, task=task)
    if not ctx.is_main:
        return 0  # only rank 0 writes
    save_state_dict(result.model, out / WEIGHTS_FILE)
    record = {
        **result.to_dict(),
        "input": str(pruned_dir),
        "teacher": teacher_source,
        "data": args.data,
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "debug")},
        "versions": {"torch": torch.__version__},
    }
    write_json_atomic(out / RESULT_FILE, record)
    # plan.json last: until it exists, the output directory is not a loadable model.
    write_json_atomic(out / PLAN_FILE, {**document, "weights": WEIGHTS_FILE,
                                        "weights_sha256": sha256_file(out / WEIGHTS_FILE),
                                        "recovery": RESULT_FILE})
    steps = [f"{result.accuracy_before:.2f}%"]
    if result.accuracy_bn_recal is not None:
        steps.append(f"BN recal {result.accuracy_bn_recal:.2f}%")
    if result.accuracy_reconstructed is not None:
        steps.append(f"reconstructed {result.accuracy_reconstructed:.2f}%")
    steps.append(f"{'distilled' if result.distilled else 'fine-tuned'} {result.accuracy_after:.2f}%")
    if result.accuracy_last_weights is not None:
        steps[-1] += f" (averaged; last weights {result.accuracy_last_weights:.2f}%)"
    print(f"{train.info.name} test {result.metric}: " + " -> ".join(steps) +
          f"  ({result.epochs_completed} epochs, {result.seconds:.0f}s, {result.world_size} process(es))")
    print(f"wrote {out / WEIGHTS_FILE}, {out / PLAN_FILE} and {out / RESULT_FILE}")
    return 0


def register_finetune(subparsers, add_command) -> None:
    from shrink.data.arguments import add_data_arguments

    d_train, d_distill, d_recover = default_finetune(), default_distill(), RecoverConfig()
    p = add_command(subparsers, "finetune", func=run_finetune, example=EXAMPLE,
                    help="recover a pruned model's accuracy: BN recalibration, fine-tuning, distillation "
                         "(runs under torchrun for several GPUs/nodes)")
    p.add_argument("pruned_dir", metavar="PRUNED_DIR", help="a directory written by `shrink prune`")
    p.add_argument("--out", required=True, help="output directory (a pruned dir again; a rerun resumes here)")
    p.add_argument("--model-code", metavar="FILE", help=MODEL_CODE_HELP)
    p.add_argument("--force", action="store_true", help="overwrite fine-tuned weights already in --out")
    add_data_arguments(p, help="fmnist | digits | imagefolder:DIR; a tvseg: model: fmnist-seg; a tvdet: model: "
                               "fmnist-det")
    p.add_argument("--scenes", type=int, metavar="N",
                   help="fmnist-seg/fmnist-det: the first N scenes of each split (default: all, 6000 train, 1000 test)")
    p.add_argument("--epochs", type=int, default=d_train.epochs)
    p.add_argument("--batch-size", type=int, default=d_train.batch_size, help="global: split over torchrun processes")
    p.add_argument("--optimizer", default=d_train.optimizer, help="sgd | adamw")
    p.add_argument("--lr", type=float, default=d_train.lr, help=f"peak learning rate (default {d_train.lr})")
    p.add_argument("--weight-decay", type=float, default=d_train.weight_decay, help="not on norms and biases")
    p.add_argument("--schedule", default=d_train.schedule, help="cosine | onecycle (both after a linear warmup)")
    p.add_argument("--warmup-epochs", type=float, default=d_train.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d_train.label_smoothing)
    p.add_argument("--grad-clip", type=float, default=None, help="max global gradient norm")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d_train.augment,
                   help="random crop/flip of the training images (default: off; 5 epochs are too few to profit)")
    p.add_argument("--ema-epochs", type=float, default=d_train.ema_epochs,
                   help="end with the weights averaged (EMA) over about this many last epochs (default: off)")
    p.add_argument("--no-bn-recal", action="store_true", help="skip BN recalibration before training")
    p.add_argument("--reconstruct", action="store_true",
                   help="before training, re-fit each pruned layer to the dense model's outputs by least squares "
                        "(no labels; replaces BN recalibration)")
    p.add_argument("--reconstruct-images", type=int, default=RECONSTRUCT_IMAGES,
                   help=f"train images for --reconstruct (<= 2000, default {RECONSTRUCT_IMAGES})")
    p.add_argument("--bn-images", type=int, default=d_recover.bn_recal_images, help="train images for BN recal (<= 2000)")
    p.add_argument("--distill", action="store_true", help="distill from the dense model (the plan's source, or --teacher)")
    p.add_argument("--teacher", help="the dense teacher model (default: the model the plan was made from)")
    p.add_argument("--temperature", type=float, default=d_distill.temperature)
    p.add_argument("--alpha", type=float, default=d_distill.alpha, help="weight of the teacher term (1-alpha: labels)")
    p.add_argument("--no-teacher-cache", action="store_true",
                   help="run the teacher on every batch even when its logits could be computed once "
                        "(they are by default without augmentation or feature layers: same targets, faster)")
    p.add_argument("--feature-layers", help="comma-separated module names for attention-transfer distillation")
    p.add_argument("--feature-weight", type=float, default=100.0, help="weight of the feature term (with --feature-layers)")
    p.add_argument("--val-fraction", type=float, default=0.0, help="hold out this much of train for validation")
    p.add_argument("--patience", type=int, default=None, help="early stopping: epochs without a better val accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (cuda:LOCAL_RANK under torchrun)")
