"""Subprocess worker for the torchrun test of dense models: recovers a segmenter or a detector on a
few composed scenes through `shrink.recover.recover` (validation split, eval split, distillation)
and writes what each process measured, so the test can check every process took the same numbers.

    torchrun --standalone --nproc_per_node=2 dense_worker.py --task segmentation --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict

import torch

from shrink.data import load_data
from shrink.models.registry import create_model
from shrink.models.spec import ModelSpec
from shrink.recover import DistillConfig, RecoverConfig, TrainConfig, recover

MODELS = {"segmentation": ("tvseg:lraspp_mobilenet_v3_large", "fmnist-seg"),
          "detection": ("tvdet:ssdlite320_mobilenet_v3_large", "fmnist-det")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=sorted(MODELS), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # no oversubscription under torchrun
    name, data = MODELS[args.task]
    models = []
    for seed in (0, 1):  # the teacher, then the student
        torch.manual_seed(seed)
        models.append(create_model(ModelSpec(name=name, num_classes=11, input_size=(128, 128))))
    train, test = load_data(data, "train", scenes=args.scenes), load_data(data, "test", scenes=8)
    config = RecoverConfig(bn_recal=True, bn_recal_images=8, val_fraction=0.25, distill=DistillConfig(alpha=0.5),
                           train=TrainConfig(epochs=2, batch_size=4, optimizer="adamw", lr=0.003, warmup_epochs=0.0,
                                             augment=False, device="cpu", early_stopping_patience=1))
    result = recover(models[1], models[0], train, config, eval_split=test, progress=False)
    rank = int(os.environ.get("RANK", "0"))
    record = {k: v for k, v in result.to_dict().items()
              if k in ("accuracy_before", "accuracy_bn_recal", "accuracy_after", "best_epoch", "world_size", "metric")}
    record["history"] = [asdict(h) for h in result.history]
    record["param_sum"] = float(sum(p.detach().double().sum() for p in result.model.parameters()))
    with open(os.path.join(args.out, f"result-rank{rank}.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main()
