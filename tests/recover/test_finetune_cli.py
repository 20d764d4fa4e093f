"""`shrink finetune PRUNED_DIR`: writes a loadable pruned dir + result, resumes, and turns bad
input into one-line errors without touching existing files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from recover_fixtures import digits, make_pruned_dir

from shrink.cli import main
from shrink.evaluate import evaluate_torch
from tiny_model import TINY_FILE

from shrink.models import ModelCode
from shrink.load import load_model as load_any_model

# The tiny model is built by tests/recover/tiny_model.py: every command is handed that file.
FAST = ["--data", "digits", "--epochs", "1", "--batch-size", "32", "--no-augment", "--device", "cpu", "--lr", "0.02",
        "--model-code", TINY_FILE]


def load_model(source: str):
    return load_any_model(source, code=ModelCode.read(TINY_FILE))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return make_pruned_dir(tmp_path_factory.mktemp("finetune"))


@pytest.fixture(scope="module")
def finished(dirs, tmp_path_factory):
    """The output directory of one completed fine-tuning run (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "ft"
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--out", str(out)]) == 0
    return out


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_distill_writes_a_loadable_pruned_dir_and_a_result(dirs, tmp_path, capsys):
    before = _snapshot(dirs["pruned"])
    out = tmp_path / "kd"
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--distill", "--out", str(out)]) == 0
    assert "distilled" in capsys.readouterr().out
    assert _snapshot(dirs["pruned"]) == before  # the input is never written
    result = json.loads((out / "recovery.json").read_text())
    assert result["distilled"] and result["teacher"] == str(dirs["dense"])
    assert result["epochs_completed"] == 1 and result["config"]["distill"]["temperature"] > 0
    assert result["accuracy_after"] > result["accuracy_before"]
    loaded = load_model(str(out))  # through shrink.prune.saving.load_pruned
    accuracy = evaluate_torch(loaded.model, digits("test")).accuracy
    assert accuracy == pytest.approx(result["accuracy_after"], abs=1e-6)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["recovery"] == "recovery.json" and plan["steps"] == json.loads((dirs["pruned"] / "plan.json").read_text())["steps"]


def test_rerun_resumes_and_finished_output_needs_force(dirs, finished, tmp_path, capsys):
    out = tmp_path / "ft"
    shutil.copytree(finished, out)
    args = ["finetune", str(dirs["pruned"]), *FAST, "--out", str(out)]
    weights = (out / "pruned.safetensors").read_bytes()
    assert main(args) == 2
    assert "already holds fine-tuned weights" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0  # resumes from the finished checkpoint: nothing to train
    assert "resuming after epoch 1/1" in capsys.readouterr().err
    assert (out / "pruned.safetensors").read_bytes() == weights


def test_other_settings_refuse_the_checkpoint_and_leave_it_intact(dirs, finished, tmp_path, capsys):
    out = tmp_path / "ft"
    shutil.copytree(finished, out)
    (out / "pruned.safetensors").unlink()  # as if the first run died after its last checkpoint
    checkpoint = (out / "checkpoints" / "last.pt").read_bytes()
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--seed", "1", "--out", str(out)]) == 2
    assert "belongs to another run" in capsys.readouterr().err
    assert (out / "checkpoints" / "last.pt").read_bytes() == checkpoint


@pytest.mark.parametrize("flags, augment", [([], False), (["--augment"], True), (["--no-augment"], False)])
def test_augmentation_is_off_by_default_and_on_with_the_flag(dirs, tmp_path, flags, augment):
    # Off by default: the recovery sweeps chose no augmentation for 5-epoch fine-tuning.
    out = tmp_path / "ft"
    base = [a for a in FAST if a != "--no-augment"]
    assert main(["finetune", str(dirs["pruned"]), *base, *flags, "--out", str(out)]) == 0
    assert json.loads((out / "recovery.json").read_text())["config"]["train"]["augment"] is augment


@pytest.mark.parametrize("flags, cached", [([], True), (["--no-teacher-cache"], False), (["--augment"], False)])
def test_distillation_caches_the_teacher_logits_unless_told_or_augmenting(dirs, tmp_path, capsys, flags, cached):
    out = tmp_path / "kd"
    base = [a for a in FAST if a != "--no-augment"]
    assert main(["finetune", str(dirs["pruned"]), *base, "--epochs", "2", "--distill", *flags, "--out", str(out)]) == 0
    assert json.loads((out / "recovery.json").read_text())["teacher_cached"] is cached
    err = capsys.readouterr().err
    assert ("teacher logits: one pass" in err) is cached
    assert ("teacher runs on every batch: augmentation" in err) is ("--augment" in flags)

def test_weight_averaging_ships_the_average_and_reports_the_last_weights(dirs, tmp_path, capsys):
    out = tmp_path / "ema"
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--ema-epochs", "0.5", "--out", str(out)]) == 0
    assert "(averaged; last weights " in capsys.readouterr().out
    result = json.loads((out / "recovery.json").read_text())
    assert result["config"]["train"]["ema_epochs"] == 0.5 and result["accuracy_last_weights"] is not None
    shipped = evaluate_torch(load_model(str(out)).model, digits("test")).accuracy
    assert shipped == pytest.approx(result["accuracy_after"], abs=1e-6)  # the averaged weights are the ones written


def test_reconstruct_refits_before_training_instead_of_recalibrating(dirs, tmp_path, capsys):
    out = tmp_path / "refit"
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--distill", "--reconstruct", "--reconstruct-images", "200",
                 "--out", str(out)]) == 0
    assert "reconstructed " in capsys.readouterr().out
    result = json.loads((out / "recovery.json").read_text())
    assert result["config"]["reconstruct_images"] == 200 and result["accuracy_bn_recal"] is None
    assert result["reconstruction"]["images"] == 200 and result["reconstruction"]["layers"]
    assert result["accuracy_reconstructed"] > result["accuracy_before"]


def _source_without_weights(dirs, tmp_path):
    """A copy of the pruned dir whose plan names a registry model: no trained weights behind it."""
    moved = tmp_path / "moved"
    shutil.copytree(dirs["pruned"], moved)
    plan = json.loads((moved / "plan.json").read_text())
    plan["source"] = "tv:resnet18"  # fmnist_resnet18 would load its shipped weights
    (moved / "plan.json").write_text(json.dumps(plan))
    return moved


def test_reconstruct_without_the_dense_weights_is_a_clear_error(dirs, tmp_path, capsys):
    moved = _source_without_weights(dirs, tmp_path)
    args = ["finetune", str(moved), *FAST, "--reconstruct", "--teacher", str(dirs["dense"]), "--distill"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--reconstruct needs the dense weights" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()



@pytest.mark.parametrize("missing, match", [("plan.json", "no plan.json"), ("pruned.safetensors", "no weights")])
def test_pruned_dir_without_plan_or_weights(dirs, tmp_path, capsys, missing, match):
    broken = tmp_path / "broken"
    shutil.copytree(dirs["pruned"], broken)
    (broken / missing).unlink()
    assert main(["finetune", str(broken), *FAST, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_not_a_directory(tmp_path, capsys):
    assert main(["finetune", str(tmp_path / "nope"), *FAST, "--out", str(tmp_path / "out")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_dataset_with_other_class_count_is_refused(tmp_path, capsys):
    three = make_pruned_dir(tmp_path / "three", classes=3, train_epochs=0)
    assert main(["finetune", str(three["pruned"]), *FAST, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "3 outputs but digits has 10 classes" in err and len(err.strip().splitlines()) == 1


def test_output_may_not_be_the_input(dirs, capsys):
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--out", str(dirs["pruned"])]) == 2
    assert "input directory" in capsys.readouterr().err


def test_teacher_that_is_missing_is_a_clear_error(dirs, tmp_path, capsys):
    moved = _source_without_weights(dirs, tmp_path)
    assert main(["finetune", str(moved), *FAST, "--distill", "--out", str(tmp_path / "out")]) == 2
    assert "give --teacher" in capsys.readouterr().err


def test_bad_option_value_is_one_line(dirs, tmp_path, capsys):
    assert main(["finetune", str(dirs["pruned"]), *FAST, "--distill", "--alpha", "2", "--out", str(tmp_path / "o")]) == 2
    assert "alpha must be in [0, 1]" in capsys.readouterr().err


def test_help_ends_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert capsys.readouterr().out.rstrip().splitlines()[-1].strip().startswith("shrink finetune")




def test_finetune_on_a_folder_of_png_files(tmp_path, fmnist_dir, capsys):
    """Your own images: prune a file.py:factory model given by --weights, then distill it on an
    ImageFolder of real PNG files. The teacher is the dense model the plan recorded (its weights by
    absolute path), so finetune needs no --teacher, and the images are read at the plan's input size."""
    from own_model_fixtures import INPUT_SIZE, write_image_folder, write_model_code

    from shrink.models import create_model, default_spec, save_state_dict
    from shrink.models.code import ModelCode

    images = write_image_folder(tmp_path / "images", fmnist_dir, {"train": 20, "val": 10})
    code = write_model_code(tmp_path)
    name = f"{code}:small_cnn"
    spec = default_spec(name, num_classes=3, input_size=(INPUT_SIZE, INPUT_SIZE))
    save_state_dict(create_model(spec, code=ModelCode.read(code)), tmp_path / "dense.safetensors")
    assert main(["prune", name, "--weights", str(tmp_path / "dense.safetensors"), "--num-classes", "3",
                 "--input-size", str(INPUT_SIZE), "--ratio", "0.5", "--round-to", "4",
                 "--out", str(tmp_path / "pruned")]) == 0
    capsys.readouterr()
    args = ["finetune", str(tmp_path / "pruned"), "--model-code", str(code), "--data", f"imagefolder:{images}",
            "--resize", str(INPUT_SIZE + 4), "--epochs", "1", "--batch-size", "16", "--bn-images", "20", "--distill",
            "--device", "cpu", "--out", str(tmp_path / "tuned")]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"imagefolder:{images} test top-1" in out and "distilled" in out
    result = json.loads((tmp_path / "tuned" / "recovery.json").read_text())
    assert result["teacher"] == name.replace(str(code), str(code.resolve())) and result["epochs_completed"] == 1


def test_a_plan_made_from_random_weights_is_recognized():
    from shrink.recover.finetune import pruned_from_untrained

    assert pruned_from_untrained({"source": "tv:resnet18"})
    assert pruned_from_untrained({"source": "/somewhere/my_model.py:build"})
    assert not pruned_from_untrained({"source": "tv:resnet18", "source_weights": "/w/resnet18.safetensors"})
    assert not pruned_from_untrained({"source": "fmnist_resnet18"})  # its trained weights ship in the package
