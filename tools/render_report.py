"""Render a finished run's report again from its step records, with whichever `shrink` is imported.

Usage: python tools/render_report.py RUN_DIR OUT_DIR

A refactor of the summary or the report can be checked against the code before it: render the same
run with both (PYTHONPATH pointing at a checkout of each) and compare OUT_DIR byte for byte. The
summary's creation time is blanked, so only what the code does can differ.
"""

import json
import sys
from pathlib import Path

from shrink.recipe import load_recipe
from shrink.report import run_report, write_report
from shrink.run.manifest import build_summary
from shrink.run.rundir import RunPaths, read_record

STEPS = ("model", "prune", "recover", "export", "quantize", "verify", "bench")


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    recipe = load_recipe(run / "recipe.yaml")
    paths = RunPaths(root=run, dense=run)
    records = {name: read_record(paths.record(name)) for name in STEPS}
    manifest = json.loads((run / "manifest.json").read_text())
    flags = records["quantize"].result.get("flags") or []
    notes = tuple(n for n in manifest["notes"] if n not in flags)  # the run's notes, before quantize adds its flags
    summary = build_summary(recipe.name, records, paths, manifest["inputs"]["data"], notes, recipe.gate)
    record = summary.to_dict() if hasattr(summary, "to_dict") else summary  # older code: a plain dict
    record["run"]["created_utc"] = "-"
    title, blocks = run_report.build(summary, records["prune"].result["plan"]["layers"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(record, indent=1))
    print(", ".join(write_report(out, "report", title, blocks) + ["summary.json"]))


if __name__ == "__main__":
    main()
