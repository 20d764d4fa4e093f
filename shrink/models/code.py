"""Model code: a Python file that builds a model (`path/file.py:factory`), and when it may run.

A `file.py:factory` source runs the user's own Python, so it is only ever run on the user's word:
- the user names it on the command line (`shrink prune my_model.py:build`) or in the recipe they
  run (`model.source`), or
- a plan or model card names it, and the user hands the file over with `--model-code FILE`
  (`model.code` in a recipe), whose sha256 must match the one the plan or card recorded.

A name read from a file (plan.json, a model card, a plan's `source`) is data, never trust: loading
one that needs code, without the user's file, is refused with a line that says what to trust.
The bytes that were hashed are the bytes that run, so the file cannot change in between.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shrink.errors import ShrinkError
from shrink.models.source import ModelSource, SourceKind



@dataclass(frozen=True)
class ModelCode:
    """A Python file the user has said may run, read once: `source` is what runs, `sha256` its hash."""

    path: Path
    source: bytes
    sha256: str

    @classmethod
    def read(cls, path: str | Path) -> "ModelCode":
        path = Path(path)
        if not path.is_file():
            raise ShrinkError(f"model code file not found: {path}")
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise ShrinkError(f"cannot read model code {path}: {exc.strerror or exc}") from exc
        return cls(path=path, source=source, sha256=hashlib.sha256(source).hexdigest())


def is_code_name(name: str) -> bool:
    """`path/file.py:factory`: built by running a Python file."""
    return ModelSource.parse(name).kind is SourceKind.CODE


def split_code_name(name: str) -> tuple[Path, str]:
    """`dir/file.py:factory` -> (Path('dir/file.py'), 'factory')."""
    source = ModelSource.parse(name)
    return source.path, source.name


def user_model_code(name: str, model_code: str | Path | None = None) -> ModelCode | None:
    """The code the user trusts for this command: `--model-code FILE`, else the file of a
    `file.py:factory` name the user typed themselves. Only call this with what the user typed."""
    if model_code is not None:
        return ModelCode.read(model_code)
    if is_code_name(name):
        return ModelCode.read(split_code_name(name)[0])
    return None


def untrusted_code_message(what: str, name: str, sha256: str | None) -> str:
    """The one line for a plan or card that needs code the user has not handed over."""
    file = split_code_name(name)[0]
    digest = f"; its sha256 must be {sha256}" if sha256 else ""
    return (f"{what} names the Python code {name}: loading it would run {file}, and a file's word is not enough "
            f"to run code. If you trust that code, pass it yourself: --model-code {file} (in a recipe: "
            f"model.code){digest}")


def code_for_record(what: str, name: str, recorded_sha256: str | None, code: ModelCode | None) -> ModelCode | None:
    """The code to build a model that a plan or card (`what`) describes: None when it needs none;
    the user's `code` when it does and the record can be checked against it; otherwise an error."""
    if not is_code_name(name):
        return None
    if code is None:
        raise ShrinkError(untrusted_code_message(what, name, recorded_sha256))
    if recorded_sha256 is None:
        raise ShrinkError(f"{what} names the model code {name} but records no sha256 of it (an older torch-shrink "
                          f"wrote it), so {code.path} cannot be checked against it; recreate it with this version")
    if recorded_sha256 != code.sha256:
        raise ShrinkError(f"{code.path} (sha256 {code.sha256[:12]}...) is not the code {what} was made with "
                          f"(sha256 {recorded_sha256[:12]}...); pass that same file as --model-code")
    return code


MODEL_CODE_HELP = ("the Python file of a file.py:factory model that a plan or model card names: the one file "
                   "you trust to run (its sha256 must match the record)")
