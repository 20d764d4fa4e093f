"""plan() / apply(): an inspectable plan, a new smaller model, the input left alone."""

import copy
import json
import warnings

import pytest
import torch
from prune_fixtures import tv_model

from shrink.errors import ShrinkError
from shrink.prune import PruneConfig, PrunePlan, PruneWarning, apply, apply_step, check_exactness, plan, plan_step, plan_steps
from shrink.prune.counting import count_params


@pytest.fixture(scope="module")
def resnet_and_plan():
    torch.set_num_threads(1)
    model, inputs = tv_model("resnet18", 32)
    return model, inputs, plan(model, inputs, PruneConfig(ratio=0.5))


def test_plan_is_inspectable(resnet_and_plan):
    model, _, result = resnet_and_plan
    assert isinstance(result, PrunePlan) and len(result.steps) == 1
    group = next(g for g in result.groups if g.root == "layer1.0.conv1")
    assert group.width == 64 and len(group.removed) == 32
    names = {layer.name: layer for layer in group.layers}
    assert names["layer1.0.conv1"].axis == "out" and names["layer1.0.bn1"].optype == "BN"
    assert names["layer1.0.conv2"].axis == "in" and names["layer1.0.conv2"].removed == group.removed
    widths = {w.name: w for w in result.layers}
    assert widths["layer1.0.conv1"].before == (64, 64) and widths["layer1.0.conv1"].after == (32, 32)
    assert widths["fc"].after == (256, 10)  # the classifier keeps its outputs; its inputs are pruned
    assert result.before.params == count_params(model)
    assert result.before.macs > 3.5 * result.after.macs
    assert [n.root for n in result.left_whole] == ["fc"]


def test_apply_returns_a_new_smaller_model(resnet_and_plan):
    model, inputs, result = resnet_and_plan
    state = copy.deepcopy(model.state_dict())
    pruned = apply(model, result)
    assert pruned is not model
    assert count_params(pruned) == result.after.params
    assert pruned.layer1[0].conv1.weight.shape == (32, 32, 3, 3)  # the stem is coupled to layer1
    assert pruned(*inputs).shape == (2, 10)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # input untouched


def test_plan_json_round_trip(resnet_and_plan):
    _, _, result = resnet_and_plan
    text = result.to_json()
    assert PrunePlan.from_json(text) == result
    assert json.loads(text)["after"]["macs"] == result.after.macs
    assert PrunePlan.from_json(text).digest() == result.digest()


def test_plan_does_not_change_the_model():
    model, inputs = tv_model("mobilenet_v3_small", 32)
    model.train()
    before = copy.deepcopy(model.state_dict())
    attributes = {name: set(vars(m)) for name, m in model.named_modules()}
    plan(model, inputs, PruneConfig(ratio=0.3, importance="random"))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {name: set(vars(m)) for name, m in model.named_modules()} == attributes  # no counters left
    assert not any(m._forward_hooks for m in model.modules())


def test_apply_rejects_a_plan_for_another_model(resnet_and_plan):
    _, _, result = resnet_and_plan
    other, _ = tv_model("resnet34", 32)
    with pytest.raises(ShrinkError, match="layers the plan does not know: layer1.2"):
        apply(other, result)


def test_iterative_steps_reach_the_same_widths():
    model, inputs = tv_model("resnet18", 32)
    one = plan(model, inputs, PruneConfig(ratio=0.5))
    seen = []

    def recover(pruned, cumulative):
        seen.append(len(cumulative.steps))
        with torch.no_grad():  # stands in for fine-tuning: the next step scores these weights
            for p in pruned.parameters():
                p.mul_(1.01)
        return pruned

    results = list(plan_steps(model, inputs, PruneConfig(ratio=0.5, steps=2), recover=recover))
    assert seen == [1, 2]
    two, last_model = results[-1]
    assert [s.ratio for s in two.steps] == [0.25, 0.5]
    assert {w.name: w.after for w in two.layers} == {w.name: w.after for w in one.layers}
    assert count_params(last_model) == two.after.params
    assert count_params(apply(model, two)) == two.after.params  # replay from dense reaches the same shapes


def test_plan_step_and_apply_step():
    model, inputs = tv_model("resnet18", 32)
    config = PruneConfig(ratio=0.4, steps=2)
    first = plan_step(model, inputs, config)
    pruned = apply_step(model, first)
    second = plan_step(pruned, inputs, config, previous=first)
    final = apply_step(pruned, second)
    assert len(second.steps) == 2 and second.before == first.before
    assert count_params(final) == second.after.params
    with pytest.raises(ShrinkError, match="already has all 2 steps"):
        plan_step(final, inputs, config, previous=second)


def test_ignored_layers_keep_their_width():
    model, inputs = tv_model("resnet18", 32)
    with pytest.warns(PruneWarning, match="groups left whole, keeping the widths of: layer4"):
        result = plan(model, inputs, PruneConfig(ratio=0.5, ignore=("layer4",)))
    widths = {w.name: w for w in result.layers}
    assert widths["layer4.1.conv1"].after == widths["layer4.1.conv1"].before
    assert widths["layer1.0.conv1"].after == (32, 32)
    assert any("ignored (--ignore layer4)" in n.reason for n in result.left_whole)


def test_unknown_ignore_glob_is_an_error():
    model, inputs = tv_model("resnet18", 32)
    with pytest.raises(ValueError, match="'layer9' matches no module or parameter; close names"):
        plan(model, inputs, PruneConfig(ignore=("layer9",)))


def test_global_scope_enforces_the_max_layer_ratio():
    model, inputs = tv_model("resnet18", 32)
    config = PruneConfig(scope="global", ratio=0.7, max_layer_ratio=0.75, importance="random")
    result = plan(model, inputs, config)
    for group in result.groups:
        assert len(group.removed) <= 0.75 * group.width, group.root
    removed = sum(len(g.removed) for g in result.groups)
    assert removed >= 0.6 * sum(g.width for g in result.groups)


def test_round_to_sets_the_kept_multiples():
    model, inputs = tv_model("mobilenet_v2", 32)
    result = plan(model, inputs, PruneConfig(ratio=0.5, round_to=16))
    for group in result.groups:
        kept = group.width - len(group.removed)
        assert kept % 16 == 0 or kept < 16, (group.root, kept)


def test_input_type_is_checked():
    model, _ = tv_model("resnet18", 32)
    with pytest.raises(ShrinkError, match="example_inputs must be a tensor"):
        plan(model, {"x": torch.randn(1, 3, 32, 32)})


def test_resnet50_acceptance_figure():
    """torchvision resnet50, uniform 0.5, l2, round_to 8, classifier kept: 4.12 -> about 1.07 GMACs."""
    torch.manual_seed(0)
    import torchvision

    model = torchvision.models.resnet50(weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unexpected is left whole
        result = plan(model, torch.randn(1, 3, 224, 224), PruneConfig(ratio=0.5, importance="l2", round_to=8), verify=False)
    assert round(result.before.macs / 1e9, 2) == 4.12
    assert abs(result.after.macs / 1e9 - 1.07) < 0.01
    assert result.layers[-1].name == "fc" and result.layers[-1].after[1] == 1000


def test_grouped_conv_keeps_its_group_structure():
    """13 groups of 8 channels: no multiple of 8 channels below 104 keeps the groups equal, so the
    group is pruned without rounding rather than left whole."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 104, 1), torch.nn.BatchNorm2d(104), torch.nn.ReLU(),
        torch.nn.Conv2d(104, 104, 3, padding=1, groups=13), torch.nn.BatchNorm2d(104), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(104, 10),
    ).eval()
    x = torch.randn(2, 3, 8, 8)
    result = plan(model, x, PruneConfig(ratio=0.5, round_to=8))
    pruned = apply(model, result)
    assert pruned[3].in_channels == pruned[3].out_channels == 52 and pruned[3].groups == 13
    assert check_exactness(model, result, x).passed
