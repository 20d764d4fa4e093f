import pytest
import torch

from shrink.errors import ShrinkError
from shrink.models import ModelCode, ModelRegistry, ModelSpec, create_model, list_models
from shrink.models.registry import builtin_registry


@pytest.mark.parametrize("name", builtin_registry().names())
def test_builtin_references_take_fashion_mnist(name):
    model = create_model(name).eval()
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", ["tv:resnet18", "tv:mobilenet_v3_small", "tv:efficientnet_b0"])
def test_torchvision_with_channels_classes_and_cifar_stem(name):
    model = create_model(ModelSpec(name=name, num_classes=7, in_chans=1, cifar_stem=True, input_size=(32, 32))).eval()
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 7)
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1 and first_conv.stride == (1, 1)


def test_user_file_factory(tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "def tiny(num_classes, in_chans):\n"
        "    return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n"
    )
    code = ModelCode.read(tmp_path / "net.py")
    model = create_model(f"{tmp_path}/net.py:tiny", code=code, num_classes=3, in_chans=2)
    assert model(torch.randn(1, 2, 8, 8)).shape == (1, 3)
    with pytest.raises(ShrinkError, match=r"unknown model .*net.py:tinny'; did you mean: .*net.py:tiny"):
        create_model(f"{tmp_path}/net.py:tinny", code=code)


def test_user_file_factory_never_runs_without_the_users_file(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "net.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef tiny(num_classes, in_chans): pass\n")
    with pytest.raises(ShrinkError, match=r"names the Python code .*net.py:tiny.*--model-code .*net.py"):
        create_model(f"{tmp_path}/net.py:tiny")
    other = ModelSpec(name=f"{tmp_path}/net.py:tiny", code_sha256="0" * 64)
    with pytest.raises(ShrinkError, match=r"is not the code .* was built with"):
        create_model(other, code=ModelCode.read(tmp_path / "net.py"))
    assert not marker.exists()


@pytest.mark.parametrize(
    "name, close",
    [("fmnist_resnet81", "fmnist_resnet18"), ("tv:resnet05", "tv:resnet50"), ("tv:mobilenetv2", "tv:mobilenet_v2")],
)
def test_unknown_name_lists_close_matches(name, close):
    with pytest.raises(ShrinkError, match=f"unknown model '{name}'; did you mean: .*{close}"):
        create_model(name)


def test_duplicate_registration_raises():
    registry = ModelRegistry()
    spec = ModelSpec(name="a")
    registry.register("a", lambda s: torch.nn.Identity(), spec)
    with pytest.raises(ShrinkError, match="already registered"):
        registry.register("a", lambda s: torch.nn.Identity(), spec)


def test_list_models_filters():
    assert "tv:resnet50" in list_models()
    assert set(list_models("mobilenet")) >= {"fmnist_mobilenetv2", "tv:mobilenet_v2"}
    assert list_models("tv:resnet1*") == ["tv:resnet101", "tv:resnet152", "tv:resnet18"]


def test_spec_validation_and_round_trip():
    spec = ModelSpec(name="tv:resnet18", num_classes=5, input_size=(64, 48))
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        ModelSpec(name="x", num_classes=0)
    with pytest.raises(ValueError, match="unknown model spec keys"):
        ModelSpec.from_dict({"name": "x", "colour": "red"})
