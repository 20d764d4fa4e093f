"""`make bench`: rerun the benchmarks that run on this machine and rebuild docs/benchmarks.md.

Each script writes a Markdown fragment that names the command that produced it and the machine it
ran on. This script copies the fresh fragments into docs/measured/ (local-*.md) and concatenates
every fragment under docs/measured/ into docs/benchmarks.md, after the intro in
benchmarks/benchmarks_intro.md. Fragments measured on the GPU machine (the device tool) are not
rerun here; each of them names the command that reproduces it there.

    python benchmarks/run_all.py            # rerun the local benchmarks (tens of minutes on 2 cores)
    python benchmarks/run_all.py --assemble # only rebuild docs/benchmarks.md from docs/measured/
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEASURED = REPO / "docs" / "measured"

# name -> (command, the fragment that command writes); all run on this machine
LOCAL = {
    "local-prune-speed": (["benchmarks/prune_speed.py"], "out/prune_speed.md"),
    "local-prune-unstructured": (["benchmarks/prune_unstructured.py"], "out/prune_unstructured.md"),
    # the default recipe's recovery with crop/flip on and off, scored on a split held out of train
    "local-recovery-demo-augment": (["benchmarks/recovery_demo_augment.py"], "out/recovery_demo_augment.md"),
    # the same recovery from BN recalibration or from layer-wise reconstruction (and the lr after it)
    "local-recovery-demo-start": (["benchmarks/recovery_demo_start.py"], "out/recovery_demo_start.md"),
    # distillation with the teacher's logits computed once vs on every batch
    "local-kd-teacher-cache": (["benchmarks/kd_teacher_cache.py"], "out/kd_teacher_cache.md"),
    "local-bench-cpu": (["benchmarks/bench_cpu.py", "--out", "runs/bench_cpu"], "runs/bench_cpu/bench_cpu.md"),
    # the bench method against the old interleaving and an independent fresh-process reference
    "local-bench-method": (["benchmarks/bench_method.py", "--out", "runs/bench_method"], "runs/bench_method/bench_method.md"),
    "local-int8-cpu": (["benchmarks/int8_cpu.py", "--out", "runs/int8_cpu"], "runs/int8_cpu/int8_cpu.md"),
    # the reference segmenter and detector: dense vs pruned 0.3/0.5 vs int8 (shrink sweep)
    "local-dense-tasks": (["benchmarks/dense_tasks.py", "--out", "runs/dense_tasks"], "runs/dense_tasks/dense_tasks.md"),
    # torchvision's published figures for the dense-task architectures (anchors, no model is run)
    "local-dense-anchors": (["benchmarks/dense_anchors.py"], "out/dense_anchors.md"),
    # Faster R-CNN trained briefly, pruned, exported with parity on every test scene, timed
    "local-two-stage": (["benchmarks/two_stage.py"], "out/two_stage/two_stage.md"),
    # a new user's own model and images, end to end, through the report's deploy section
    "local-own-model-scenario": (["benchmarks/own_model_scenario.py", "--out", "runs/own_scenario"],
                                 "runs/own_scenario/own_model_scenario.md"),
    # issue 5's Fashion-MNIST accuracy target (0.2 pt) asked of auto mode through its budget
    "local-int8-fmnist-budget": (["benchmarks/int8_cpu.py", "--models", "fmnist_resnet18", "--budget", "0.2",
                                  "--out", "runs/int8_cpu_budget"], "runs/int8_cpu_budget/int8_cpu.md"),
    # issue 25: the latency table's predictions against measured whole models (table A)
    "local-latency-predictor-fp32-t2": (["benchmarks/latency_predictor.py", "--models", "resnet50", "mobilenet_v2",
                                         "efficientnet_b0", "--threads", "2", "--precision", "fp32", "--configs", "10",
                                         "--out", "runs/latency_predictor"],
                                        "runs/latency_predictor/latency_predictor-fp32-t2.md"),
    "local-latency-predictor-int8-t2-mobilenet_v2": (["benchmarks/latency_predictor.py", "--models", "mobilenet_v2",
                                                      "--threads", "2", "--precision", "int8", "--configs", "10", "--out",
                                                      "runs/latency_predictor_int8_mnv2"],
                                                     "runs/latency_predictor_int8_mnv2/latency_predictor-int8-t2.md"),
    "local-latency-predictor-int8-t2-resnet50": (["benchmarks/latency_predictor.py", "--models", "resnet50", "--threads",
                                                  "2", "--precision", "int8", "--configs", "10", "--out",
                                                  "runs/latency_predictor_int8_r50"],
                                                 "runs/latency_predictor_int8_r50/latency_predictor-int8-t2.md"),
    # budgets hit, and what is kept at equal measured latency against uniform pruning (tables B and C, 224)
    "local-latency-budget-fp32-t2": (["benchmarks/latency_budget.py", "--models", "resnet50", "mobilenet_v2", "--budgets",
                                      "0.5", "0.25", "--threads", "2", "--equal-latency", "--out", "runs/latency_budget"],
                                     "runs/latency_budget/latency_budget-fp32-t2.md"),
    # top-1 at equal measured latency on Fashion-MNIST (table C)
    "local-latency-equal-accuracy": (["benchmarks/latency_equal_accuracy.py", "--model", "fmnist_resnet18", "--budget",
                                      "0.25", "--seeds", "0", "--out", "runs/latency_equal_accuracy"],
                                     "runs/latency_equal_accuracy/latency_equal_accuracy.md"),
    # the layer timer's ratios against bench_method.py's fresh-interpreter reference
    "local-latency-method-check": (["benchmarks/latency_method_check.py", "--model", "resnet18", "--threads", "2",
                                    "--out", "runs/latency_method_check"],
                                   "runs/latency_method_check/latency_method_check.md"),
    "local-latency-cli": (["benchmarks/latency_cli.py", "--out", "runs/latency_cli"], "runs/latency_cli/latency_cli.md"),
    "local-round-to-granule": (["benchmarks/round_to_granule.py", "--threads", "1", "2", "--out", "runs/round_to_granule"],
                               "runs/round_to_granule/round_to_granule.md"),
}


def rerun_local() -> None:
    for name, (command, fragment) in LOCAL.items():
        print(f"run_all: {name}: {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, *command], cwd=REPO, check=True)
        shutil.copyfile(REPO / fragment, MEASURED / f"{name}.md")


def assemble() -> Path:
    parts = [(REPO / "benchmarks" / "benchmarks_intro.md").read_text(encoding="utf-8").rstrip() + "\n"]
    for fragment in sorted(MEASURED.glob("*.md")):
        parts.append(f"\n---\n\n<!-- from docs/measured/{fragment.name} -->\n\n" + fragment.read_text(encoding="utf-8").strip() + "\n")
    out = REPO / "docs" / "benchmarks.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assemble", action="store_true", help="only rebuild docs/benchmarks.md")
    args = parser.parse_args()
    if not args.assemble:
        rerun_local()
    print(f"run_all: wrote {assemble()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
