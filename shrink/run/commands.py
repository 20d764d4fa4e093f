"""`shrink run` and `shrink sweep`: parse arguments into a Recipe and options, call the pipeline,
print its closing lines (or one JSON object)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shrink.errors import ShrinkValueError
from shrink.models.code import MODEL_CODE_HELP
from shrink.run.gate import STRICT_EXIT_CODE


def _add_common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("recipe", nargs="?", help="recipe YAML file (default: the built-in Fashion-MNIST "
                                                  "ResNet-18 recipe), or the name of a shipped example (`shrink recipes` lists them)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one recipe field, e.g. --set prune.ratio=0.3 (YAML value; repeatable)")
    parser.add_argument("--model-code", metavar="FILE", help=f"{MODEL_CODE_HELP}; the same as --set model.code=FILE")
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"output directory (default: {default_out})")
    parser.add_argument("--force", action="store_true", help="replace a directory that holds another recipe's run")
    parser.add_argument("--quiet", action="store_true", help="no progress output, only the closing summary")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")


def run_command(args: argparse.Namespace) -> int:
    from shrink.pipeline import RunOptions, run
    from shrink.recipe import load_recipe

    recipe = load_recipe(args.recipe, _overrides(args))
    result = run(recipe, RunOptions(out=args.out, force=args.force, quiet=args.quiet or args.json,
                                    inputs=(Path(args.recipe),) if args.recipe else ()))
    _print(result.to_dict(), result.summary, args.json)
    if args.strict and result.warnings:
        print(f"shrink run: --strict: the ship gate has {len(result.warnings)} warning(s); the bundle in "
              f"{result.run_dir} is written but should not ship", file=sys.stderr)
        return STRICT_EXIT_CODE
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    return [*args.overrides, *([f"model.code={json.dumps(args.model_code)}"] if args.model_code else [])]


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise ShrinkValueError(f"--ratios takes numbers separated by commas, e.g. 0.3,0.5,0.7; got {text!r}") from exc
    if not ratios:
        raise ShrinkValueError("--ratios is empty")
    return ratios


def parse_precisions(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def sweep_command(args: argparse.Namespace) -> int:
    from shrink.recipe import load_recipe
    from shrink.sweep import SweepOptions, sweep

    recipe = load_recipe(args.recipe, _overrides(args))
    options = SweepOptions(ratios=parse_ratios(args.ratios), precisions=parse_precisions(args.precisions),
                           out=args.out, force=args.force, quiet=args.quiet or args.json,
                           inputs=(Path(args.recipe),) if args.recipe else ())
    result = sweep(recipe, options)
    _print(result.to_dict(), result.summary, args.json)
    return 0


def _print(record: dict, summary: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        print("\n".join(summary))


def recipes_command(args: argparse.Namespace) -> int:
    from shrink.fileio import check_writable, write_text_atomic
    from shrink.recipe import RECIPES_DIR, example_recipe

    if args.name is None:
        for path in sorted(RECIPES_DIR.glob("*.yaml")):
            first = next((line[2:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")), "")
            print(f"{path.stem:24s} {first}")
        print("(shrink recipes NAME --out FILE writes one out to edit; shrink run FILE runs it)")
        return 0
    text = example_recipe(args.name)
    if args.out is None:
        print(text, end="")
        return 0
    if args.out.exists() and not args.force:
        raise ShrinkValueError(f"{args.out} exists; choose another --out or pass --force")
    check_writable(args.out)
    write_text_atomic(args.out, text)
    print(f"wrote {args.out}; edit it, then: shrink run {args.out}")
    return 0


def register(subparsers) -> None:
    from shrink.subcommand import add_command

    p = add_command(subparsers, "recipes", func=recipes_command,
                    help="list the example recipes that ship with torch-shrink, or write one out to edit",
                    example="shrink recipes imagefolder_resnet50 --out my_recipe.yaml")
    p.add_argument("name", nargs="?", help="the recipe to print or write (default: list them)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE instead of printing it")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")

    p = add_command(subparsers, "run", func=run_command,
                    help="the whole pipeline from a recipe: prune, recover, export, quantize, verify, bench, report",
                    example="shrink run my_recipe.yaml --set prune.ratio=0.3 --out runs/r30")
    _add_common(p, "runs/<recipe name>")
    p.add_argument("--strict", action="store_true",
                   help=f"exit {STRICT_EXIT_CODE} when the ship gate warns (a recovery step that hurt, a shipped "
                        "file more than gate.max_drop_pt below dense), for CI pipelines")
    p = add_command(subparsers, "sweep", func=sweep_command,
                    help="run a recipe at several pruning ratios and precisions; Pareto table and plot",
                    example="shrink sweep --ratios 0.3,0.5,0.7 --precisions fp32,int8")
    _add_common(p, "runs/<recipe name>-sweep")
    p.add_argument("--ratios", default="0.3,0.5,0.7", help="pruning ratios, comma-separated (default 0.3,0.5,0.7)")
    p.add_argument("--precisions", default="fp32,int8", help="fp32, int8 or both (default fp32,int8)")
