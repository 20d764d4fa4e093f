import pickle

import pytest
import torch

from shrink.errors import ShrinkError
from shrink.models import apply_state_dict, create_model, load_state_dict, save_state_dict


class _Payload:
    """Unpickling this would run code (os.system); the loader must refuse it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_safetensors_round_trip_fp16(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_state_dict(model, tmp_path / "w.safetensors", dtype=torch.float16)
    state = load_state_dict(path)
    assert state["weight"].dtype == torch.float16
    fresh = apply_state_dict(torch.nn.Linear(3, 2), state)
    torch.testing.assert_close(fresh.weight, model.weight.half().float())


def test_pt_state_dict_loads_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pt")
    assert torch.equal(load_state_dict(tmp_path / "w.pt")["bias"], model.bias)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Payload()}, f)
    with pytest.raises(ShrinkError, match="refusing to load .*pickled code"):
        load_state_dict(path)


def test_whole_model_pickle_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    with pytest.raises(ShrinkError, match="pickled code"):
        load_state_dict(tmp_path / "model.pt")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_checkpoint(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    model = torch.nn.Linear(64, 64)
    if suffix == ".pt":
        torch.save(model.state_dict(), path)
    else:
        save_state_dict(model, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ShrinkError, match="truncated or corrupt"):
        load_state_dict(path)


def test_wrong_architecture_lists_missing_unexpected_and_shapes(tmp_path):
    path = save_state_dict(create_model("fmnist_mobilenetv2"), tmp_path / "mv2.safetensors")
    with pytest.raises(ShrinkError, match=r"does not match the architecture: missing \d+: .*; unexpected \d+: .*"):
        apply_state_dict(create_model("fmnist_resnet18"), load_state_dict(path), source=str(path))
    small = create_model("tv:resnet18", num_classes=10, in_chans=1)
    with pytest.raises(ShrinkError, match=r"shape mismatch 2: fc.bias: .*, fc.weight: checkpoint \(1000, 512\) vs model \(10, 512\)"):
        apply_state_dict(small, create_model("tv:resnet18", in_chans=1).state_dict())


def test_missing_file():
    with pytest.raises(ShrinkError, match="weights file not found"):
        load_state_dict("/nonexistent/w.safetensors")
