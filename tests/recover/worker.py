"""Subprocess worker for the kill/resume and torchrun tests: trains tiny_net on digits through
`shrink.recover.recover` and writes its accuracy. Each process writes result-rank{R}.json, so the
test can check that every process ended with the same (all-reduced) numbers.

    python worker.py --out DIR [--epochs N]
    torchrun --standalone --nproc_per_node=2 worker.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from recover_fixtures import digits, fast_train, load_split, tiny_net  # noqa: E402
from shrink.recover import RecoverConfig, recover  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--run-id", default="worker")
    p.add_argument("--data", help="directory with train.pt/test.pt from save_split (else load digits)")
    p.add_argument("--device", default="cpu", help="cpu (gloo under torchrun) or cuda (nccl)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # bitwise-reproducible CPU kernels, and no oversubscription under torchrun
    torch.manual_seed(0)
    model = tiny_net(16)
    config = RecoverConfig(bn_recal=False, train=fast_train(epochs=args.epochs, batch_size=args.batch_size,
                                                            device=args.device))
    out = Path(args.out)
    if args.data:
        train, test = load_split(Path(args.data) / "train.pt"), load_split(Path(args.data) / "test.pt")
    else:
        train, test = digits("train"), digits("test")
    result = recover(model, None, train, config, eval_split=test,
                     checkpoint_dir=out / "checkpoints", run_id=args.run_id)
    rank = int(os.environ.get("RANK", "0"))
    record = {k: v for k, v in result.to_dict().items() if k in ("accuracy_after", "epochs_run", "world_size")}
    record["resumed"] = result.epochs_completed - result.epochs_run
    record["param_sum"] = float(sum(p.detach().double().sum() for p in result.model.parameters()))
    (out / f"result-rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
