"""The wheel a user installs: built from this checkout, installed into a fresh venv outside it, and
run from an empty directory. Slow (a wheel build and the whole demo run): `make test-slow`.

The fresh venv gets torch and the other dependencies from the test venv's site-packages through a
path entry (installing torch again takes minutes), and torch-shrink only from the wheel: the
checkout is not on its path, so a file missing from the wheel fails here."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WHEEL_LIMIT_MB = 40  # the README says the wheel's size; the reference weights are most of it

pytestmark = pytest.mark.slow


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of the fresh venv, its shrink, an empty working directory)."""
    base = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(REPO)])
    wheel = next((base / "dist").glob("torch_shrink-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Dependencies from the test venv, by path only (its .pth files, the editable checkout among them,
    # are not read from a path entry).
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)])
    work = base / "empty"
    work.mkdir()
    return python, venv / "bin" / "shrink", work, wheel


def test_the_wheel_holds_the_references_and_recipes_and_is_small(installed):
    *_, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("shrink/references/fmnist_resnet18.safetensors", "shrink/references/fmnist_resnet18.json",
                   "shrink/recipes/fmnist_resnet18.yaml", "shrink/recipes/imagefolder_resnet50.yaml"):
        assert needed in names
    assert wheel.stat().st_size < WHEEL_LIMIT_MB * 2**20


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    python, _, work, _ = installed
    where = _run([str(python), "-c", "import shrink; print(shrink.__file__)"], cwd=work).stdout.strip()
    assert not Path(where).resolve().is_relative_to(REPO)


def test_shrink_run_from_an_empty_directory(installed, fmnist_dir):
    python, shrink, work, _ = installed
    env = {**os.environ, "SHRINK_DATA": str(fmnist_dir), "SHRINK_NO_DOWNLOAD": "1"}
    listed = _run([str(shrink), "recipes"], cwd=work, env=env).stdout
    assert "imagefolder_resnet50" in listed
    done = _run([str(shrink), "run", "--quiet", "--json"], cwd=work, env=env)
    import json

    numbers = json.loads(done.stdout)["numbers"]
    assert numbers["accuracy"]["dense"] > 90 and not numbers["untrained"]  # the shipped trained weights
    assert (work / "runs" / "fmnist-resnet18" / "report.md").is_file()
