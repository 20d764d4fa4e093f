"""Faster R-CNN on real images: trained briefly, pruned, exported with parity on every eval image.

The support table (benchmarks/dense_zoo.py) checks untrained models on random inputs. An untrained
Faster R-CNN ranks its proposals by objectness logits that all lie within 1e-7 of zero, so on real
images the ranking is decided by rounding, and PyTorch and onnxruntime may keep different
proposals. This script gives the model real differences to rank first:

1. build `tvdet:fasterrcnn_mobilenet_v3_large_320_fpn` at 128x128 with 11 classes (the
   fmnist-det scenes, composed from Fashion-MNIST) and train it from scratch with torchvision's own
   losses for --minutes, 64 sampled regions per image (shrink cannot train a two-stage detector;
   see shrink.models.two_stage);
2. score it (mAP@[.5:.95], pycocotools) on the test scenes;
3. prune at uniform ratio 0.5 (`shrink prune` defaults, the exactness check on every output), then
   refit it layer by layer to the dense model's outputs on 512 training scenes (the recipes'
   label-free reconstruction; shrink cannot fine-tune it), and score again;
4. export both to ONNX with parity on every output over the test scenes, score both files
   through onnxruntime, and time them side by side (`shrink bench`, 2 threads, batch 1).

    .venv/bin/python benchmarks/two_stage.py --minutes 8

Writes out/two_stage/: the trained weights (trained.safetensors, reused by --weights), the ONNX
files, results.json and two_stage.md (benchmarks/run_all.py copies it
to docs/measured/local-two-stage.md).
A benchmark, not a test: minutes of CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prune_zoo import machine  # noqa: E402

from shrink.fileio import write_text_atomic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "two_stage"
NAME = "tvdet:fasterrcnn_mobilenet_v3_large_320_fpn"
SIZE = 128
CLASSES = 11  # background + the 10 Fashion-MNIST classes


def train(model, split, minutes: float, seed: int) -> dict:
    """torchvision's own training forward (losses of the RPN and the box head), AdamW, batch 16."""
    import torch

    from shrink.data import BatchOptions
    from shrink.data.targets import targets_to_list

    detector = model.detector.train()
    # 64 sampled regions per image, not torchvision's 512: scenes hold 1 to 4 items, and the box
    # head on 512 regions of 16 images made a CPU step take seconds
    detector.roi_heads.fg_bg_sampler.batch_size_per_image = 64
    optimizer = torch.optim.AdamW(detector.parameters(), lr=1e-3, weight_decay=1e-4)
    start, steps, epoch, last = time.perf_counter(), 0, 0, {}
    while time.perf_counter() - start < minutes * 60:
        for x, targets in split.batches(BatchOptions(batch_size=16, shuffle=True, seed=seed, epoch=epoch)):
            losses = detector(list(x.float()), targets_to_list(targets))
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            last = {k: round(float(v.detach()), 4) for k, v in losses.items()}
            if steps % 25 == 0:
                print(f"  step {steps}  loss {float(loss):.3f}  {time.perf_counter() - start:.0f}s", flush=True)
            if time.perf_counter() - start >= minutes * 60:
                break
        epoch += 1
    model.eval()
    return {"steps": steps, "epochs_started": epoch, "seconds": round(time.perf_counter() - start), "last_losses": last}


def measure(minutes: float, test_scenes: int, seed: int, weights: str | None) -> dict:
    import torch

    from shrink.bench.api import run_bench
    from shrink.bench.config import BenchConfig, OnnxCandidate
    from shrink.data import BatchOptions, load_data
    from shrink.evaluate import evaluate_onnx, evaluate_torch
    from shrink.export import ExportConfig, export
    from shrink.models import LoadedModel, ModelSpec
    from shrink.models.registry import create_model
    from shrink.models.weights import apply_state_dict, load_state_dict, save_state_dict
    from shrink.prune import PruneConfig
    from shrink.prune.stage import run as prune
    from shrink.recover.reconstruct import reconstruct
    from shrink.tasks import Task

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec(name=NAME, num_classes=CLASSES, input_size=(SIZE, SIZE))
    model = create_model(spec)
    train_split = load_data("fmnist-det", "train")
    test_split = load_data("fmnist-det", "test", scenes=test_scenes)
    row: dict = {"model": NAME, "input": SIZE, "test_scenes": len(test_split)}
    if weights:  # a model this script trained before (its training record beside it)
        apply_state_dict(model, load_state_dict(weights), weights)
        row["training"] = json.loads(Path(weights).with_suffix(".json").read_text())
        model.eval()
    else:
        print(f"training {NAME} for {minutes} min on {len(train_split)} fmnist-det scenes", flush=True)
        row["training"] = train(model, train_split, minutes, seed)
        save_state_dict(model.state_dict(), OUT / "trained.safetensors")
        write_text_atomic(OUT / "trained.json", json.dumps(row["training"]) + "\n")

    def score(m) -> float:  # percent, as EvalResult gives it
        return round(evaluate_torch(m, test_split, batch_size=64, task=Task.DETECTION).accuracy, 2)

    row["dense_map_torch"] = score(model)
    example = (next(iter(test_split.batches(BatchOptions(batch_size=2))))[0].float(),)
    pruned = prune(LoadedModel(model, spec, NAME), PruneConfig(ratio=0.5), example=example)
    row["exactness"] = pruned.exactness.summary()
    row["mac_reduction"] = round(pruned.plan.mac_reduction, 2)
    row["params"] = [pruned.plan.before.params, pruned.plan.after.params]
    row["pruned_map_torch"] = score(pruned.model.eval())
    # the recipes' label-free recovery, the one a two-stage detector can have here
    fitted = reconstruct(pruned.model, model, pruned.plan.removed_outputs(), train_split, max_images=512, seed=seed)
    row["reconstruction"] = {"images": fitted.images, "layers": len(fitted.layers), "seconds": round(fitted.seconds)}
    row["reconstructed_map_torch"] = score(pruned.model.eval())
    files = {}
    for label, net in (("dense", model), ("pruned", pruned.model)):
        path = OUT / f"{label}.onnx"
        path.unlink(missing_ok=True)
        result = export(LoadedModel(net, spec, label), ExportConfig(), path, eval_split=test_split)
        parity = result.parity
        row[f"{label}_export"] = {
            "exporter": result.exporter, "passed": parity.passed, "eval_images": parity.eval_images,
            "rechecked_alone": parity.rechecked_alone, "batch_max_abs_diff": [b.max_abs_diff for b in parity.batches],
            "mb": round(result.size_bytes / 1e6, 2)}
        row[f"{label}_map_onnx"] = round(evaluate_onnx(path, test_split, batch_size=64).accuracy, 2)
        files[label] = str(path)
    bench = run_bench([OnnxCandidate(files["dense"], "dense"), OnnxCandidate(files["pruned"], "pruned")],
                      BenchConfig(threads=2, batch=1))
    speed = bench.candidates[1].speedup
    row["latency_ms"] = {c.label: round(c.latency.p50_ms, 2) for c in bench.candidates}
    row["speedup"] = [round(speed.ratio, 2), round(speed.ci_low, 2), round(speed.ci_high, 2)]
    row["bench_caveats"] = list(bench.caveats)
    return row


def markdown(row: dict, command: str) -> str:
    dense, pruned = row["dense_export"], row["pruned_export"]
    training = row["training"]
    lines = [
        "## Faster R-CNN on real images (benchmarks/two_stage.py)",
        "",
        f"Machine: {machine()}. Command: `{command}`.",
        "",
        f"`{row['model']}` at {row['input']}x{row['input']}, 11 classes, trained from scratch for "
        f"{training['seconds']} s ({training['steps']} steps of 16 scenes) with torchvision's own losses on the "
        "fmnist-det scenes (composed from Fashion-MNIST). Scored on "
        f"{row['test_scenes']} test scenes, mAP@[.5:.95] by pycocotools.",
        "",
        "| | mAP PyTorch | mAP onnxruntime | export parity (every output, every test scene) | ONNX MB | p50 latency ms |",
        "|---|---|---|---|---|---|",
        f"| dense | {row['dense_map_torch']:.2f}% | {row['dense_map_onnx']:.2f}% | {_parity(dense)} | {dense['mb']} | "
        f"{row['latency_ms']['dense']} |",
        f"| pruned 0.5, reconstructed | {row['reconstructed_map_torch']:.2f}% | {row['pruned_map_onnx']:.2f}% | "
        f"{_parity(pruned)} | {pruned['mb']} | {row['latency_ms']['pruned']} |",
        "",
        f"- Pruned, before recovery: {row['pruned_map_torch']:.2f}% mAP. Layer-wise reconstruction: "
        f"{row['reconstruction']['layers']} layers on {row['reconstruction']['images']} training scenes, "
        f"{row['reconstruction']['seconds']} s. {row['mac_reduction']:.2f}x fewer MACs; "
        f"params {row['params'][0] / 1e6:.2f} M -> {row['params'][1] / 1e6:.2f} M.",
        f"- Exactness: {row['exactness']}.",
        f"- Speedup, onnxruntime CPU, 2 threads, batch 1 (`shrink bench` defaults): {row['speedup'][0]:.2f}x "
        f"[95% CI {row['speedup'][1]:.2f}-{row['speedup'][2]:.2f}].",
    ]
    if row.get("bench_caveats"):
        lines.append(f"- Bench caveats: {'; '.join(row['bench_caveats'])}")
    return "\n".join(lines) + "\n"


def _parity(export: dict) -> str:
    verdict = "pass" if export["passed"] else "FAIL"
    alone = f"; {export['rechecked_alone']} matched only compared alone" if export["rechecked_alone"] else ""
    return f"{verdict} on {export['eval_images']} images ({export['exporter']}{alone})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8.0, help="training time (default 8)")
    parser.add_argument("--test-scenes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="skip training: the out/two_stage/trained.safetensors an earlier run saved")
    args = parser.parse_args(argv)
    row = measure(args.minutes, args.test_scenes, args.seed, args.weights)
    write_text_atomic(OUT / "results.json", json.dumps(row, indent=2) + "\n")
    command = "python benchmarks/two_stage.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != parser.get_default(k))
    text = markdown(row, command)
    write_text_atomic(OUT / "two_stage.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
