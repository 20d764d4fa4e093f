"""Build a latency table: `build_table(model, example, target) -> LatencyTable`.

1. The width space: the model's prunable groups, the widths each may keep (granule multiples), and
   which group sets each layer's input and output (shrink.prune.space).
2. The dense model is exported once; each conv/linear layer that a group changes is cut out with
   its epilogue (shrink.bench.layer_graphs), and layers of the same shape share one "kind".
3. A kit: every kind rebuilt on a grid of (c_in, c_out) pairs, tabled jointly (a group changes one
   layer's output and the next one's input), plus whole models at a few width configurations
   (dense, uniform, random) for the calibration. int8 subgraphs are quantized as `shrink quantize` ships them (QDQ, u8 activations,
   s8 per-channel weights).
4. The kit is timed by shrink/bench/layer_timer.py in a fresh worker process (here) or on the
   device (`--export-kit`), which writes the table JSON; the calibration is fitted when the table
   is loaded (shrink.bench.latency_table).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from shrink.bench.granule import PRECISIONS, RUNTIMES
from shrink.bench.latency_table import LatencyTable, TableKey, TableLayer, axis_width
from shrink.errors import ShrinkError, ShrinkValueError

GRID_POINTS = 5  # widths sampled per axis; the table interpolates between them
CALIBRATION_RATIOS = (0.0, 0.3, 0.6, 0.85)  # uniform ratios of whole-model calibration points
CALIBRATION_RANDOM = 3  # and this many random width configurations
OPSET = 18
TIMER = Path(__file__).with_name("layer_timer.py")
KIT_META = "kit_meta.json"
DEFAULT_CACHE = Path.home() / ".cache" / "torch-shrink" / "latency"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TableTarget:
    """What the table is for: where and how the model will run."""

    runtime: str = "cpu"
    precision: str = "fp32"
    threads: int = 2
    batch: int = 1
    grid_points: int = GRID_POINTS
    rounds: int = 2  # passes over every entry, each in a new random order
    warmup_runs: int = 3
    warmup_seconds: float = 0.02
    min_runs: int = 7
    min_seconds: float = 0.05
    whole_seconds: float = 1.0  # each calibration model is timed this long (its figure anchors every prediction)
    calibration_random: int = CALIBRATION_RANDOM  # random width configurations among the calibration models
    spinning: bool = True
    graph_optimization: str = "all"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ShrinkValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {self.runtime!r}")
        if self.precision not in PRECISIONS:
            raise ShrinkValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        for name in ("threads", "batch", "grid_points", "rounds", "min_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ShrinkValueError(f"{name} must be a positive integer, got {value!r}")
        if self.grid_points < 2:
            raise ShrinkValueError(f"grid_points must be at least 2, got {self.grid_points}")
        if self.precision == "int8" and self.runtime != "cpu":
            raise ShrinkValueError("int8 tables are made for onnxruntime CPU (QDQ); use fp16 on cuda/tensorrt")
        if self.precision == "fp16" and self.runtime == "cpu":
            raise ShrinkValueError("fp16 tables are for cuda or tensorrt; on the CPU use fp32 or int8")

    def key(self, structure: str, machine: str) -> TableKey:
        return TableKey(structure, machine, self.runtime, self.precision, self.threads, self.batch)


def check_runtime(runtime: str) -> None:
    """Refuse, in one line, a runtime this onnxruntime cannot run (with the ones it can)."""
    from shrink.ort_session import resolve_provider

    resolve_provider(runtime)


def local_fingerprint() -> tuple[str, dict]:
    from shrink.bench import layer_timer

    block = layer_timer.machine_block()
    return layer_timer.fingerprint(block), block


def cache_path(key: TableKey, config, cache_dir: Path | None = None) -> Path:
    """Where a table is cached: its key, and the width space it was tabled over (round_to,
    max_layer_ratio, ignored layers and attention mode decide the groups and their grid)."""
    import hashlib

    space = json.dumps([config.round_to, config.max_layer_ratio, list(config.ignore), config.attention])
    return (cache_dir or DEFAULT_CACHE) / key.cache_name().replace(".json", f"-w{hashlib.sha256(space.encode()).hexdigest()[:8]}.json")


# ----------------------------------------------------------------------------- the kit


def _grid(values: list[int], points: int) -> list[int]:
    """`points` values spread evenly over `values` (ascending), both ends included."""
    values = sorted(set(values))
    if len(values) <= points:
        return values
    picks = np.linspace(0, len(values) - 1, points).round().astype(int)
    return sorted({values[i] for i in picks})


def _axis_values(dense: int, share: int, group, space) -> list[int]:
    if group is None:
        return [dense]
    g = space.group(group)
    return [axis_width(dense, share, g.width, c) for c in g.channels]


def _quantize_subgraph(src: Path, dst: Path, seed: int) -> None:
    """int8 as `shrink quantize` ships it by default: static QDQ, u8 activations, s8 per-channel."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from shrink.quantize.recipe import QuantRecipe
    from shrink.quantize.ptq import quiet

    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    sample = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
              for i in model.graph.input}

    class OneSample(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([sample])

        def get_next(self):
            return next(self.items, None)

    # A kit quantizes hundreds of subgraphs: onnxruntime's advice to pre-process each one (a root
    # logger WARNING) would bury the progress lines.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with quiet():
            quantize_static(str(src), str(dst), OneSample(), **QuantRecipe().ort_kwargs())
    finally:
        root.setLevel(level)


def write_for_precision(model_proto, path: Path, precision: str, seed: int) -> None:
    import onnx

    if precision == "int8":
        plain = path.with_suffix(".fp32.onnx")
        onnx.save(model_proto, str(plain))
        _quantize_subgraph(plain, path, seed)
        plain.unlink()
    elif precision == "fp16":
        try:
            from onnxconverter_common import float16  # optional; only fp16 tables need it
        except ImportError:
            raise ShrinkError("fp16 latency tables need onnxconverter-common: pip install onnxconverter-common") from None

        onnx.save(float16.convert_float_to_float16(model_proto, keep_io_types=True), str(path))
    else:
        onnx.save(model_proto, str(path))


def export_onnx(model, example, path: Path) -> None:
    import onnx

    from shrink.export.exporters import torch_to_onnx

    exported = torch_to_onnx(model, example, exporter="auto", opset=OPSET, dynamic_batch=False)
    onnx.save(exported.proto, str(path))


def prepare_kit(model, example, target: TableTarget, config, kit_dir: Path, progress: Progress | None = None) -> dict:
    """Write the subgraphs, the calibration models, kit.json, kit_meta.json and the timer into
    `kit_dir`; returns the meta (what assembling the table needs besides the times)."""
    import onnx
    import torch

    from shrink.bench.layer_graphs import build_subgraph, describe, find_sites
    from shrink.prune import apply, plan
    from shrink.prune.planner import width_space_of

    say = progress or (lambda line: None)
    model = model.eval()
    say("finding the prunable groups and their widths")
    space = width_space_of(model, example, config)
    axes = {layer.name: layer for layer in space.layers}
    (kit_dir / "layers").mkdir(parents=True, exist_ok=True)
    (kit_dir / "whole").mkdir(exist_ok=True)
    say("exporting the dense model to cut its layers")
    export_onnx(model, example, kit_dir / "whole" / "dense.fp32.onnx")
    dense_proto = onnx.load(str(kit_dir / "whole" / "dense.fp32.onnx"))
    sites, missing = find_sites(dense_proto, set(axes))
    notes = []
    if missing:
        notes.append(f"{len(missing)} layers could not be cut out as a subgraph and are costed by the whole-model "
                     f"calibration only: {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else ""))
    entries, kinds, layers = [], {}, []
    for site in sites:
        describe(site)
        ax = axes[site.name]
        layers.append(TableLayer(site.name, site.kind, site.dense_cin, site.dense_cout, ax.in_group, ax.in_share,
                                 ax.out_group, ax.out_share, site.pixels(site.x_shape), site.pixels(site.out_shape)))
        if site.kind in kinds:
            continue
        tied = site.depthwise or (ax.in_group is not None and ax.in_group == ax.out_group)
        cout = _grid(_axis_values(site.dense_cout, ax.out_share, ax.out_group, space), target.grid_points)
        cin = cout if tied else _grid(_axis_values(site.dense_cin, ax.in_share, ax.in_group, space), target.grid_points)
        pairs = [(c, c) for c in cout] if tied else [(i, o) for i in cin for o in cout]
        kinds[site.kind] = {"ops": list(site.ops), "cin": cin, "cout": cout, "depthwise": tied, "entries": {}}
        for ci, co in pairs:
            entry_id = f"{site.kind}@{ci}x{co}"
            path = kit_dir / "layers" / f"{entry_id}.onnx"
            write_for_precision(build_subgraph(site, ci, co, target.batch, OPSET, target.seed), path, target.precision, target.seed)
            kinds[site.kind]["entries"][f"{ci}x{co}"] = entry_id
            entries.append({"id": entry_id, "file": f"layers/{entry_id}.onnx"})
    say(f"{len(layers)} layers in {len(kinds)} kinds, {len(entries)} subgraphs; exporting the calibration models")
    calibration = []
    for name, keeps in calibration_configs(space, config, target.seed, target.calibration_random):
        fp32 = kit_dir / "whole" / (f"{name}.fp32.onnx" if keeps else "dense.fp32.onnx")
        widths = {}
        if keeps:
            p = plan(model, example, _by_keeps(config), keeps=keeps, verify=False)
            widths = {g.root: g.width - len(g.removed) for g in p.groups}
            with torch.no_grad():
                export_onnx(apply(model, p), example, fp32)
        write_for_precision(onnx.load(str(fp32)), kit_dir / "whole" / f"{name}.onnx", target.precision, target.seed)
        calibration.append({"id": f"whole:{name}", "widths": widths})
        entries.append({"id": f"whole:{name}", "file": f"whole/{name}.onnx", "timing": {
            "warmup_runs": 5, "warmup_seconds": target.whole_seconds / 5, "min_runs": 20, "min_seconds": target.whole_seconds}})
    for extra in (kit_dir / "whole").glob("*.fp32.onnx"):
        extra.unlink()
    kit = {
        "format": "torch-shrink-layer-kit",
        "kit_id": space.structure,
        "runtime": target.runtime,
        "threads": target.threads,
        "spinning": target.spinning,
        "graph_optimization": target.graph_optimization,
        "warmup_runs": target.warmup_runs,
        "warmup_seconds": target.warmup_seconds,
        "min_runs": target.min_runs,
        "min_seconds": target.min_seconds,
        "rounds": target.rounds,
        "seed": target.seed,
        "entries": entries,
    }
    meta = {
        "structure": space.structure,
        "target": dataclasses.asdict(target),
        "groups": {g.root: g.width for g in space.groups},
        "layers": [dataclasses.asdict(layer) for layer in layers],
        "kinds": kinds,
        "calibration": calibration,
        "notes": notes,
    }
    (kit_dir / "kit.json").write_text(json.dumps(kit, indent=1))
    (kit_dir / KIT_META).write_text(json.dumps(meta, indent=1))
    shutil.copyfile(TIMER, kit_dir / TIMER.name)
    return meta


def _by_keeps(config):
    """The config with its target cleared: widths given as keeps need no target."""
    return dataclasses.replace(config, ratio=0.5, target_macs=None, target_params=None, target_latency=None, steps=1)


def calibration_configs(space, config, seed: int, random_count: int = CALIBRATION_RANDOM) -> list[tuple[str, dict[str, int]]]:
    """(name, keeps) of the whole models the calibration times: dense (empty keeps), uniform keep
    shares, and random ones (a share per model, jittered per group) like those the allocator makes."""
    import random

    rng = random.Random(seed)
    out = []
    for ratio in CALIBRATION_RATIOS:
        ratio = min(ratio, config.max_layer_ratio)
        out.append((f"uniform{ratio:.2f}", {g.root: _nearest(g, 1 - ratio, 1.0) for g in space.groups} if ratio else {}))
    for i in range(random_count):
        share = rng.uniform(0.2, 0.9)
        out.append((f"random{i}", {g.root: _nearest(g, share, rng.uniform(0.75, 1.25)) for g in space.groups}))
    return out


def _nearest(group, share: float, jitter: float) -> int:
    want = group.width * min(1.0, share * jitter)
    return group.units[min(range(len(group.channels)), key=lambda k: abs(group.channels[k] - want))]


def run_timer(kit_dir: Path, quiet: bool = False) -> LatencyTable:
    """Time the kit here, in a fresh worker process of its own (the timer prints its progress and
    writes the table, as it does on a device)."""
    out = kit_dir / "table.json"
    done = subprocess.run([sys.executable, str(kit_dir / TIMER.name), str(kit_dir), "--out", str(out)]
                          + (["--quiet"] if quiet else []), stdout=subprocess.DEVNULL)
    if done.returncode != 0 or not out.is_file():
        raise ShrinkError(f"timing the layer kit failed (exit {done.returncode}; its message is above)")
    return LatencyTable.load(out)


# ----------------------------------------------------------------------------- the stage


def build_table(model, example, target: TableTarget, config, *, cache_dir: Path | None = None,
                use_cache: bool = True, progress: Progress | None = None, quiet: bool = False) -> LatencyTable:
    """The table for `model` on this machine, from the cache when one with the same key is there."""
    from shrink.prune.space import structure_hash

    check_runtime(target.runtime)
    fingerprint, _ = local_fingerprint()
    key = target.key(structure_hash(model, tuple(example.shape)), fingerprint)
    cached = cache_path(key, config, cache_dir)
    if use_cache and cached.is_file():
        table = LatencyTable.load(cached)
        if table.key == key and table.timing.get("grid_points") == target.grid_points:
            if progress:
                progress(f"latency table from the cache: {cached}")
            return table
    with tempfile.TemporaryDirectory(prefix="shrink-layer-kit-") as tmp:
        prepare_kit(model, example, target, config, Path(tmp), progress)
        table = run_timer(Path(tmp), quiet=quiet)
    table.check_key(key)
    cached.parent.mkdir(parents=True, exist_ok=True)
    table.save(cached)
    return table
