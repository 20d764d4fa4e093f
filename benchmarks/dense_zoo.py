"""Support table for segmenters and detectors: prune, check, export and run in onnxruntime.

For each torchvision segmentation model and supported detector (random init with BatchNorm
statistics from 16 fmnist-seg / fmnist-det scenes, 11 classes, 128x128 input): plan at uniform ratio 0.5 (l2, round_to 8, the layers
that write classes, boxes or masks kept), run the exactness check on every output, apply, export
the pruned model to ONNX (dynamo, or TorchScript for Faster R-CNN; dynamic batch) with parity on
every output, and run the file in onnxruntime. Each model runs in its own process (benchmarks/prune_zoo.py's runner).

    .venv/bin/python benchmarks/dense_zoo.py                       # the list below, minutes
    .venv/bin/python benchmarks/dense_zoo.py tvdet:fcos_resnet50_fpn
    .venv/bin/python benchmarks/dense_zoo.py --table               # rebuild table.md

Writes out/dense_zoo/results.jsonl and out/dense_zoo/table.md (the table in docs/pruning.md).
This is a benchmark, not a test; the same models are the `slow` tests of tests/prune and
tests/export.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prune_zoo import load_note, machine, read_results, run_all  # noqa: E402

from shrink.fileio import write_text_atomic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "dense_zoo"
MODELS = [
    "tvseg:lraspp_mobilenet_v3_large", "tvseg:deeplabv3_mobilenet_v3_large", "tvseg:fcn_resnet50",
    "tvseg:deeplabv3_resnet50", "tvdet:ssdlite320_mobilenet_v3_large", "tvdet:fcos_resnet50_fpn",
    "tvdet:retinanet_resnet50_fpn", "tvdet:fasterrcnn_mobilenet_v3_large_320_fpn",
]
SIZE = 128
CLASSES = 11  # background + the 10 Fashion-MNIST classes
CALIBRATION_SCENES = 16


def measure_one(name: str, size: int) -> dict:
    """Plan, check, apply, export and run one model (in the child process)."""
    import warnings

    import numpy as np
    import torch

    from shrink.data import BatchOptions, load_data
    from shrink.export import ExportConfig, export
    from shrink.models import LoadedModel, ModelSpec
    from shrink.models.registry import create_model
    from shrink.ort_session import create_session
    from shrink.prune import PruneConfig, PruneWarning, apply, check_exactness, plan
    from shrink.recover.bn import fresh_bn_statistics
    from shrink.tasks import Task

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = ModelSpec(name=name, num_classes=CLASSES, input_size=(size, size))
    model = create_model(spec).eval()
    # BN statistics from real scenes: at torchvision's init, running statistics of 0 and 1 shrink a
    # detector's outputs to ~1e-20, where every parity check passes and proves nothing
    scenes = load_data("fmnist-det" if spec.predicts is Task.DETECTION else "fmnist-seg", "test", scenes=CALIBRATION_SCENES)
    x, _ = next(iter(scenes.batches(BatchOptions(batch_size=CALIBRATION_SCENES))))
    with fresh_bn_statistics(model), torch.no_grad():
        model(x)
    inputs = (x[:2],)
    row = {"model": name, "input": size}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = plan(model, inputs, PruneConfig(ratio=0.5, importance="l2", round_to=8))
    report = check_exactness(model, result, inputs)
    pruned = apply(model, result).eval()
    checked = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pruned.onnx"
        exported = export(LoadedModel(pruned, spec, name), ExportConfig(), path)
        session = create_session(path, "cpu")
        outputs = session.run(None, {"input": x[:1].numpy()})
        size_bytes = path.stat().st_size
    row.update(
        params_before=result.before.params,
        params_after=result.after.params,
        macs_before=result.before.macs,
        macs_after=result.after.macs,
        mac_reduction=round(result.mac_reduction, 2),
        groups=len(result.groups),
        kept_writers=sorted(n.root for n in result.left_whole if "model output" in n.reason),
        left_whole=[n.root for n in result.left_whole if "model output" not in n.reason],
        check_kind=report.kind,
        passed=report.passed and exported.parity.passed,
        relative_diff=(report.max_abs_diff / report.max_abs_output) if report.max_abs_diff is not None else None,
        exporter=exported.exporter,
        parity_max_abs_diff=max(b.max_abs_diff for b in exported.parity.batches),
        parity_max_abs_output=float(max(np.abs(a).max() for a in outputs)),
        onnx_outputs={o.name: list(a.shape) for o, a in zip(session.get_outputs(), outputs)},
        onnx_mb=round(size_bytes / 1e6, 2),
        prune_seconds=round(checked - start, 1),
        export_seconds=round(exported.seconds, 1),
        warnings=[str(w.message)[:200] for w in caught if issubclass(w.category, PruneWarning)],
    )
    return row


def markdown(rows: list[dict]) -> str:
    head = [
        "| model | input | MACs dense | MAC reduction at 0.5 | check | prediction layers kept | ONNX outputs (batch 1) "
        "| parity max abs diff (max abs output) | result | groups pruned / left whole | time prune + export (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    body = []
    for r in sorted(rows, key=lambda r: r["model"]):
        if "error" in r:
            body.append(f"| {r['model']} | {r['input']} | | | | | | | FAIL: {r['error']} | | |")
            continue
        outputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["onnx_outputs"].items())
        body.append(
            f"| {r['model']} | {r['input']} | {r['macs_before'] / 1e9:.3f} G | {r['mac_reduction']:.2f}x | "
            f"{r['check_kind']} | {len(r['kept_writers'])} | {outputs} | {r['parity_max_abs_diff']:.1e} ({r['parity_max_abs_output']:.1e}) | "
            f"{'pass' if r['passed'] else 'FAIL'} | {r['groups']} / {len(r['left_whole'])} | "
            f"{r['prune_seconds']:.0f} + {r['export_seconds']:.0f} |"
        )
    passed = sum(1 for r in rows if r.get("passed"))
    return "\n".join(head + body) + f"\n\n{passed} of {len(rows)} pass.\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"registry names (default: {len(MODELS)} models)")
    parser.add_argument("--table", action="store_true", help="only rebuild table.md from results.jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.size)))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    results = OUT / "results.jsonl"
    if not args.table:
        run_all(args.models or MODELS, lambda name: SIZE, results, script=__file__)
    rows = list(read_results(results).values())
    table = markdown(rows)
    write_text_atomic(OUT / "table.md", f"Machine: {machine()}; {load_note(rows)}\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
