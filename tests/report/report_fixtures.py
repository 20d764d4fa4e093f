"""A hand-made run summary (the shape shrink.run.manifest.build_summary returns), so report tests
need no pipeline run."""

from __future__ import annotations

import copy

from shrink.data.preprocessing import Preprocessing
from shrink.run.summary import RunSummary

RECORD = Preprocessing(color="L", crop=(28, 28), mean=(0.286,), std=(0.353,))

MACHINE = {"cpu_model": "Test CPU @ 2.00GHz", "physical_cores": 2, "logical_cpus": 2, "cpu_flags": ["avx2", "fma"],
           "os": "Linux-test", "python_version": "3.11.7", "torch_version": "2.14.1", "onnxruntime_version": "1.32.0",
           "onnxruntime_package": "onnxruntime"}


def latency(p50: float) -> dict:
    return {"p50_ms": p50, "p90_ms": p50 * 1.2, "p99_ms": p50 * 1.5, "median_ci_low_ms": p50 * 0.95,
            "median_ci_high_ms": p50 * 1.05, "runs": 100, "cv": 0.05, "noisy": False}


def candidate(name: str, file: str | None, params: int, macs: int, size: int, acc_torch, acc_onnx, p50: float,
              speedup: float | None) -> dict:
    return {"name": name, "file": file, "params": params, "macs": macs, "size_bytes": size,
            "accuracy_torch": acc_torch, "accuracy_onnx": acc_onnx, "latency": latency(p50),
            "speedup": None if speedup is None else {"baseline": "dense fp32", "ratio": speedup,
                                                     "ci_low": speedup * 0.9, "ci_high": speedup * 1.1},
            "shipped": False, "note": None}


BASE = {
    "format": "torch-shrink/run-manifest",
    "version": 1,
    "run": {"name": "demo", "torch-shrink": "0.1.0", "recipe": "recipe.yaml", "created_utc": "2026-11-22T00:00:00+00:00"},
    "inputs": {"model": {"source": "models/m.safetensors", "spec": {"name": "m"}, "card_test_accuracy": 95.29},
               "data": {"dataset": "fmnist", "synthetic": False, "eval_split": "test", "eval_images": 1000,
                        "test_images_available": 10000, "train_images": 2048, "train_images_available": 60000,
                        "seed": 0}},
    "preprocessing": {"input_name": "input", "input_shape": ["batch", 1, 28, 28], "layout": "NCHW",
                      "dtype": "float32", "record": RECORD.to_dict(), "steps": RECORD.steps()},
    "labels": [f"class{i}" for i in range(10)],
    "shipped": {"file": "model.int8.onnx", "int8": True, "reason": "int8 static-qdq: 1.8x faster"},
    "candidates": [
        candidate("dense fp32", "dense.onnx", 11_000_000, 560_000_000, 44_000_000, 94.1, 94.1, 10.0, None),
        candidate("pruned fp32", "model.onnx", 2_800_000, 140_000_000, 11_000_000, 92.0, 92.0, 3.0, 3.33),
        candidate("pruned int8", "model.int8.onnx", 2_800_000, 140_000_000, 3_000_000, None, 91.9, 1.7, 5.9),
    ],
    "pruning": {"config": {"ratio": 0.5, "target_macs": None, "target_params": None, "importance": "l2",
                           "scope": "uniform", "round_to": 8},
                "plan_hash": "ab" * 32, "mac_reduction": 4.0, "param_reduction": 3.9, "groups": 12,
                "left_whole": [{"root": "fc", "reason": "writes the model output", "layers": ["fc"]}],
                "exactness": {"kind": "exact", "passed": True, "max_abs_diff": 1e-7, "tolerance": 1e-5,
                              "exact_groups": 12, "structural_groups": 0}},
    "recovery": {"recovered": True, "accuracy_before": 10.0, "accuracy_bn_recal": 55.0, "accuracy_after": 92.0,
                 "bn_recal_images": 1000, "epochs_run": 1, "distilled": True, "train_images": 2048,
                 "train_seconds": 80.0, "config": {"train": {"batch_size": 64, "lr": 0.02}}},
    "quantization": {"skipped": False, "mode": "auto", "int8": True, "shipped": "static-qdq",
                     "reason": "int8 static-qdq: 1.8x faster",
                     "fp32": {"latency_ms": 3.0, "accuracy": 92.0},
                     "candidates": [{"name": "static-qdq", "latency_ms": 1.7, "speedup": 1.8, "speedup_ci_low": 1.7,
                                     "speedup_ci_high": 1.9, "accuracy": 91.9, "top1_agreement": 0.99,
                                     "logits_sqnr_db": 30.0, "error": None}],
                     "calibration": {"dataset": "fmnist", "images": 128, "seed": 0, "synthetic": False},
                     "evaluation": {}, "flags": [], "threads": 2},
    "measurement": {"machine": MACHINE,
                    "accuracy": {"onnxruntime_providers": ["CPUExecutionProvider"], "torch_device": "cpu"},
                    "latency": {"threads": 2, "batch": 1, "provider": "cpu", "inputs": "synthetic inputs (latency only)",
                                "rounds": 20, "load_average_1m": [1.0, 1.2], "warmup_runs": 10, "min_seconds": 3.0,
                                "notes": [], "created_utc": "2026-11-22T00:00:00+00:00"}},
    "stages": [{"name": "model", "seconds": 40.0, "finished_utc": "2026-11-22T00:00:40+00:00"}],
    "notes": [],
}
BASE["candidates"][2]["shipped"] = True

LAYERS = [{"name": "conv1", "kind": "Conv2d", "before": [1, 64], "after": [1, 32]},
          {"name": "bn1", "kind": "BatchNorm2d", "before": [64, 64], "after": [32, 32]},
          {"name": "fc", "kind": "Linear", "before": [512, 10], "after": [256, 10]}]


def make_summary(*, synthetic: bool = False, int8: bool = True) -> dict:
    summary = copy.deepcopy(BASE)
    if not int8:
        summary["shipped"] = {"file": "model.onnx", "int8": False, "reason": "no int8 recipe is faster; shipping fp32"}
        summary["candidates"][2] = {"name": "pruned int8", "file": None, "shipped": False,
                                    "note": "not shipped: no int8 recipe is faster; shipping fp32"}
        summary["candidates"][1]["shipped"] = True
    if synthetic:
        summary["inputs"]["data"]["synthetic"] = True
        summary["inputs"]["data"]["dataset"] = "synthetic:1x28x28"
        for c in summary["candidates"]:
            if c.get("file"):
                c["accuracy_torch"] = c["accuracy_onnx"] = None
        summary["recovery"] = {"recovered": False, "accuracy_before": None, "accuracy_bn_recal": None,
                               "accuracy_after": None}
        summary["inputs"]["model"]["card_test_accuracy"] = None
    return summary


def typed(summary: dict) -> RunSummary:
    """The hand-made summary as the report reads it: a RunSummary, through the manifest's codec."""
    return RunSummary.from_dict(summary)
