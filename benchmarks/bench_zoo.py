"""The benchmark zoo: torchvision models, dense and pruned at a uniform ratio, exported to ONNX.

Used by bench_cpu.py and gpu.py; run on its own it builds the zoo and prints the MAC table:

    python benchmarks/bench_zoo.py --models resnet50 mobilenet_v2 --out runs/zoo

Weights are random (no downloads): latency does not depend on the weight values, only on the
shapes. Pruning uses torch-pruning directly (MetaPruner, L2 magnitude importance, uniform ratio,
round_to, classifier kept), the naive baseline of the design brief, so these scripts do not depend
on the project's own prune stage (shrink/prune), which is written separately.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

ZOO = ("resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny")
INPUT_SIZE = 224
OPSET = 17


@dataclass(frozen=True)
class ZooEntry:
    name: str
    dense: nn.Module
    pruned: nn.Module
    dense_macs: int
    pruned_macs: int
    dense_params: int
    pruned_params: int

    @property
    def mac_reduction(self) -> float:
        return self.dense_macs / self.pruned_macs


def build(name: str, seed: int = 0) -> nn.Module:
    """A torchvision model with random weights (seeded), in eval mode."""
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.get_model(name, weights=None).eval()


def final_classifier(model: nn.Module) -> nn.Linear:
    """The last Linear layer: its outputs are the classes and must not be pruned."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear classifier")
    return linears[-1]


def count_macs(model: nn.Module, input_size: int = INPUT_SIZE) -> tuple[int, int]:
    import torch_pruning as tp

    example = torch.randn(1, 3, input_size, input_size)
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def prune_uniform(model: nn.Module, ratio: float, round_to: int, input_size: int = INPUT_SIZE) -> nn.Module:
    """A pruned copy: L2 magnitude importance, the same ratio in every layer, classifier kept."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model)
    example = torch.randn(1, 3, input_size, input_size)
    with warnings.catch_warnings():  # torch-pruning warns about unwrapped parameters (ConvNeXt layer scale)
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(
            pruned,
            example,
            importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=[final_classifier(pruned)],
            round_to=round_to,
        )
        pruner.step()
    return pruned.eval()


def zoo_entry(name: str, ratio: float, round_to: int, seed: int = 0) -> ZooEntry:
    dense = build(name, seed)
    pruned = prune_uniform(dense, ratio, round_to)
    dense_macs, dense_params = count_macs(dense)
    pruned_macs, pruned_params = count_macs(pruned)
    return ZooEntry(name, dense, pruned, dense_macs, pruned_macs, dense_params, pruned_params)


def export_onnx(model: nn.Module, path: Path, *, device: str = "cpu", dtype=torch.float32) -> Path:
    """ONNX with a dynamic batch axis (TorchScript exporter: fast and stable for these models)."""
    model = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    example = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, device=device, dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
        )
    return path


def machine_lines(machine: dict) -> list[str]:
    """The machine block every fragment ends with: a heading and the fenced machine description."""
    from shrink.bench.machine import format_machine

    return ["Machine:", "", "```", format_machine(machine), "```"]


def mac_table(entries: list[ZooEntry]) -> str:
    lines = ["| model | GMACs dense | GMACs pruned | MAC reduction | params dense (M) | params pruned (M) |", "|---|---:|---:|---:|---:|---:|"]
    for e in entries:
        lines.append(
            f"| {e.name} | {e.dense_macs / 1e9:.3f} | {e.pruned_macs / 1e9:.3f} | {e.mac_reduction:.2f}× "
            f"| {e.dense_params / 1e6:.2f} | {e.pruned_params / 1e6:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="also export dense/pruned ONNX files here")
    args = parser.parse_args()
    entries = []
    for name in args.models:
        start = time.perf_counter()
        entries.append(zoo_entry(name, args.ratio, args.round_to))
        if args.out:
            export_onnx(entries[-1].dense, args.out / f"{name}-dense.onnx")
            export_onnx(entries[-1].pruned, args.out / f"{name}-pruned.onnx")
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(mac_table(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
