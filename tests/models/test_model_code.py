"""Loading a plan or a model card never runs the Python it names; only the file the user hands over
(`--model-code`, `model.code`), and only with the sha256 the plan or card recorded.

Each hostile case is the real command in a subprocess: it must exit 2 with one line, and the
marker file the hostile code would write must not appear."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import one_error_line, shrink

from shipped_models import REFERENCE_RESNET18
from shrink.cli import main
from shrink.errors import ShrinkError
from shrink.models import ModelCode, read_card
from shrink.load import load_model
from shrink.models.code import code_for_record, user_model_code

# A factory that builds the shipped reference architecture, so the shipped weights fit it.
USER_CODE = """
def build(num_classes, in_chans):
    from shrink.models import create_model
    return create_model("fmnist_resnet18", num_classes=num_classes, in_chans=in_chans)
"""


def hostile_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\n" + USER_CODE


@pytest.fixture(scope="module")
def pruned(tmp_path_factory) -> Path:
    """A real `shrink prune` directory of the shipped reference model."""
    out = tmp_path_factory.mktemp("code") / "pruned"
    assert main(["prune", str(REFERENCE_RESNET18), "--ratio", "0.5", "--no-verify", "--out", str(out)]) == 0
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hostile_pruned_dir(pruned: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a pruned directory whose plan.json names evil.py:build, as issue 22 reproduced it."""
    marker, evil = tmp_path / "marker", tmp_path / "evil.py"
    evil.write_text(hostile_code(marker))
    shared = tmp_path / "shared"
    shutil.copytree(pruned, shared)
    plan = json.loads((shared / "plan.json").read_text())
    plan["model"]["name"] = f"{evil.resolve()}:build"
    (shared / "plan.json").write_text(json.dumps(plan))
    return shared, marker


def _hostile_card(tmp_path: Path, *, record_sha: bool = False) -> tuple[Path, Path, Path]:
    """Shipped weights beside a card whose architecture is evil.py:build."""
    marker, evil = tmp_path / "marker", tmp_path / "evil.py"
    evil.write_text(hostile_code(marker))
    weights = tmp_path / "m.safetensors"
    shutil.copy(REFERENCE_RESNET18, weights)
    card = json.loads(REFERENCE_RESNET18.with_suffix(".json").read_text())
    card["weights"] = weights.name
    card["architecture"]["name"] = f"{evil.resolve()}:build"
    if record_sha:
        card["architecture"]["code_sha256"] = _sha(evil)
    (tmp_path / "m.json").write_text(json.dumps(card))
    return weights, marker, evil


# ----------------------------------------------------------------------------- hostile files, real commands


def test_eval_of_a_shared_pruned_dir_does_not_run_the_code_it_names(pruned, tmp_path):
    shared, marker = _hostile_pruned_dir(pruned, tmp_path)
    result = shrink("eval", shared, "--data", "fmnist", "--limit", "16")
    one_error_line(result, r"names the Python code .*evil\.py:build.*--model-code")
    assert not marker.exists()


def test_export_of_a_shared_pruned_dir_does_not_run_the_code_it_names(pruned, tmp_path):
    shared, marker = _hostile_pruned_dir(pruned, tmp_path)
    result = shrink("export", shared, "--out", tmp_path / "m.onnx")
    one_error_line(result, r"names the Python code .*evil\.py")
    assert not marker.exists() and not (tmp_path / "m.onnx").exists()


def test_finetune_of_a_shared_pruned_dir_does_not_run_the_code_it_names(pruned, tmp_path):
    shared, marker = _hostile_pruned_dir(pruned, tmp_path)
    result = shrink("finetune", shared, "--data", "fmnist", "--epochs", "1", "--out", tmp_path / "ft")
    one_error_line(result, r"names the Python code .*evil\.py")
    assert not marker.exists() and not (tmp_path / "ft").exists()


def test_eval_of_weights_beside_a_hostile_card_does_not_run_it(tmp_path):
    weights, marker, _ = _hostile_card(tmp_path)
    one_error_line(shrink("eval", weights, "--data", "fmnist", "--limit", "16"), r"names the Python code")
    assert not marker.exists()


def test_run_on_a_hostile_card_does_not_run_it(tmp_path):
    weights, marker, _ = _hostile_card(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{source: {weights}}}\n")
    one_error_line(shrink("run", recipe, "--quiet", "--out", tmp_path / "run"), r"names the Python code")
    assert not marker.exists() and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- the user's own word


def test_model_code_with_the_recorded_sha_builds_the_model(tmp_path, capsys):
    (tmp_path / "user.py").write_text(USER_CODE)
    weights, _, evil = _hostile_card(tmp_path, record_sha=True)
    evil.write_text(USER_CODE)  # the card's code, replaced: its sha256 no longer matches
    assert main(["eval", str(weights), "--data", "fmnist", "--limit", "64", "--model-code", str(evil)]) == 2
    assert "is not the code" in capsys.readouterr().err
    card = json.loads((tmp_path / "m.json").read_text())
    card["architecture"]["code_sha256"] = _sha(tmp_path / "user.py")
    (tmp_path / "m.json").write_text(json.dumps(card))
    assert main(["eval", str(weights), "--data", "fmnist", "--limit", "64", "--json",
                 "--model-code", str(tmp_path / "user.py")]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 80  # the shipped weights, really loaded


def test_a_record_without_a_sha_is_refused_even_with_the_file(tmp_path):
    weights, marker, evil = _hostile_card(tmp_path)
    with pytest.raises(ShrinkError, match="records no sha256"):
        load_model(str(weights), code=ModelCode.read(evil))
    assert not marker.exists()


def test_a_name_the_user_typed_records_its_sha_for_later_loads(tmp_path):
    user = tmp_path / "user.py"
    user.write_text(USER_CODE)
    name = f"{user}:build"
    loaded = load_model(name, weights=str(REFERENCE_RESNET18), code=user_model_code(name),
                        num_classes=10, in_chans=1, input_size=(28, 28), cifar_stem=True)
    assert loaded.spec.code_sha256 == _sha(user)
    assert set(loaded.files) == {user, REFERENCE_RESNET18}  # no output may overwrite them


def test_code_for_record_rules():
    code = ModelCode(Path("m.py"), b"x = 1\n", hashlib.sha256(b"x = 1\n").hexdigest())
    assert code_for_record("card", "tv:resnet18", None, None) is None  # no code needed, none used
    assert code_for_record("card", "m.py:build", code.sha256, code) is code
    with pytest.raises(ShrinkError, match="names the Python code m.py:build"):
        code_for_record("card", "m.py:build", code.sha256, None)
    with pytest.raises(ShrinkError, match="is not the code card was made with"):
        code_for_record("card", "m.py:build", "0" * 64, code)


def test_the_shipped_cards_need_no_code():
    assert read_card(REFERENCE_RESNET18.with_suffix(".json")).architecture.code_sha256 is None
