"""Layer-wise reconstruction: exact where the removed channels are redundant, better than BN
recalibration on a narrowed model, and wired into recover() and `shrink finetune --reconstruct`."""

from __future__ import annotations

import copy
import importlib
import warnings

import pytest
import torch
import torch.nn as nn
from recover_fixtures import digits, narrow_copy, trained_tiny

from shrink.errors import ShrinkError
from shrink.evaluate import evaluate_torch
from shrink.recover import RecoverConfig, recalibrate_bn, recover
from shrink.recover.reconstruct import reconstruct


def _redundant_net() -> nn.Sequential:
    """1x1 conv -> depthwise 3x3 -> 1x1 conv -> linear head, where hidden channel 3 is 2x channel 1
    (same input weights, same depthwise kernel): removing it loses nothing a re-fit cannot restore."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),
                        nn.Conv2d(4, 2, 1), nn.Flatten(), nn.Linear(2 * 8 * 8, 10))
    with torch.no_grad():
        net[0].weight[3] = 2 * net[0].weight[1]
        net[1].weight[3] = net[1].weight[1]
    return net.eval()


def _without_channel_3(net: nn.Sequential) -> nn.Sequential:
    kept = [0, 1, 2]
    small = copy.deepcopy(net)
    small[0] = nn.Conv2d(1, 3, 1, bias=False)
    small[1] = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
    small[2] = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        small[0].weight.copy_(net[0].weight[kept])
        small[1].weight.copy_(net[1].weight[kept])
        small[2].weight.copy_(net[2].weight[:, kept])
        small[2].bias.copy_(net[2].bias)
    return small.eval()


def test_redundant_channel_is_folded_back_exactly():
    dense = _redundant_net()
    pruned = _without_channel_3(dense)
    removed = {"0": frozenset({3}), "1": frozenset({3})}
    x = next(iter(digits("test").batches(_options())))[0]
    assert not torch.allclose(pruned(x), dense(x), atol=1e-3)  # pruning changed the output...

    result = reconstruct(pruned, dense, removed, digits("train"), max_images=200, ridge=1e-9)

    assert torch.allclose(pruned(x), dense(x), atol=1e-5)  # ...and the re-fit restores it
    fits = {f.name: f for f in result.layers}
    assert list(fits) == ["0", "1", "2", "4"]  # forward order, every conv and linear layer
    assert fits["2"].error_before > 0.01 and fits["2"].error_after < 1e-6
    # the kept depthwise channels see exactly the dense inputs: nothing to change there
    assert fits["1"].error_before < 1e-9
    assert torch.allclose(pruned[1].weight, dense[1].weight[[0, 1, 2]], atol=1e-4)
    assert result.images == 200 and result.skipped == ()


def test_beats_bn_recalibration_on_a_narrowed_model():
    dense = trained_tiny(width=16)
    test, train = digits("test"), digits("train")
    recalibrated = narrow_copy(dense, keep=4)
    recalibrate_bn(recalibrated, train, max_images=500)
    refitted = narrow_copy(dense, keep=4)

    result = reconstruct(refitted, dense, {"0": frozenset(range(4, 16))}, train, max_images=500)

    assert all(f.error_after <= f.error_before + 1e-9 for f in result.layers)
    assert {f.name: f for f in result.layers}["3"].error_after < 0.5 * {f.name: f for f in result.layers}["3"].error_before
    assert evaluate_torch(refitted, test).accuracy > evaluate_torch(recalibrated, test).accuracy + 5


def test_dense_outputs_rerun_per_layer_when_too_big_to_keep_give_the_same_fit(monkeypatch):
    module = importlib.import_module("shrink.recover.reconstruct")  # the package attribute is the function

    dense = trained_tiny(width=16)
    cached, rerun = narrow_copy(dense, keep=4), narrow_copy(dense, keep=4)
    removed = {"0": frozenset(range(4, 16))}
    reconstruct(cached, dense, removed, digits("train"), max_images=300, batch_size=64)
    monkeypatch.setattr(module, "TARGET_CACHE_BYTES", 0)
    reconstruct(rerun, dense, removed, digits("train"), max_images=300, batch_size=64)
    for (name, a), (_, b) in zip(cached.state_dict().items(), rerun.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_progress_reports_every_layer_count_and_ends_with_all_done(monkeypatch):
    module = importlib.import_module("shrink.recover.reconstruct")
    monkeypatch.setattr(module, "PROGRESS_LINES", 2)
    dense = _redundant_net()
    lines: list[str] = []

    result = reconstruct(_without_channel_3(dense), dense, {"0": frozenset({3}), "1": frozenset({3})},
                         digits("train"), max_images=50, progress=lines.append)

    assert len(result.layers) == 4
    assert lines[0] == "reconstruct: 4 layers on 50 images"
    # every 4 // 2 = 2 layers, then the last: "2/4" and "4/4", each naming the layer and its error
    assert [line.split()[1] for line in lines[1:]] == ["2/4", "4/4"]
    assert "(4: error " in lines[-1]


def _head_net() -> nn.Sequential:
    """conv -> ReLU -> global pool -> linear head: pruning conv channels removes inputs of the head,
    whose re-fit has to make up for them from the channels left (no normalisation after it)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10)).eval()


def _head_net_without(net: nn.Sequential, removed: list[int]) -> nn.Sequential:
    kept = [c for c in range(6) if c not in removed]
    small = copy.deepcopy(net)
    small[0], small[4] = nn.Conv2d(1, len(kept), 5), nn.Linear(len(kept), 10)
    with torch.no_grad():
        small[0].weight.copy_(net[0].weight[kept])
        small[0].bias.copy_(net[0].bias[kept])
        small[4].weight.copy_(net[4].weight[:, kept])
        small[4].bias.copy_(net[4].bias)
    return small.eval()


def _flat(layer: nn.Linear) -> torch.Tensor:
    return torch.cat([layer.weight.detach().flatten(), layer.bias.detach()])


def test_linear_refit_that_would_grow_past_the_limit_is_held_at_the_limit(monkeypatch):
    module = importlib.import_module("shrink.recover.reconstruct")
    dense = _head_net()
    removed = {"0": frozenset({1, 3, 5})}
    free = _head_net_without(dense, [1, 3, 5])
    prior = _flat(free[4])
    reconstruct(free, dense, removed, digits("train"), max_images=200, ridge=1e-9)
    plain_growth = float(_flat(free[4]).norm() / prior.norm())
    assert plain_growth > 1.05  # precondition: the unbounded re-fit of this head grows it

    limit = (1 + plain_growth) / 2
    monkeypatch.setattr(module, "LINEAR_GROWTH_LIMIT", limit)
    held = _head_net_without(dense, [1, 3, 5])
    result = reconstruct(held, dense, removed, digits("train"), max_images=200, ridge=1e-9)

    head = {f.name: f for f in result.layers}["4"]
    assert "re-fit bounded" in head.bounded and result.skipped == ()
    change = float((_flat(held[4]) - prior).norm() / prior.norm())
    # the smallest ridge that keeps the change within (limit - 1): at that bound, not far inside it
    assert (limit - 1) * 0.99 <= change <= (limit - 1) * 1.0001
    assert float(_flat(held[4]).norm() / prior.norm()) <= limit
    assert head.error_after < head.error_before  # still a re-fit, not the pruned head left alone


def test_plan_of_another_model_is_refused():
    dense = trained_tiny(width=16)
    with pytest.raises(ShrinkError, match="does not belong to this model"):
        reconstruct(narrow_copy(dense, keep=4), dense, {"0": frozenset(range(8, 16))}, digits("train"), max_images=50)


def test_recover_reconstructs_instead_of_recalibrating():
    dense = trained_tiny(width=16)
    config = RecoverConfig(train=None, reconstruct_images=300)
    with pytest.raises(ShrinkError, match="needs the prune plan"):
        recover(narrow_copy(dense, keep=4), None, digits("train"), config)
    plan = _FakePlan({"0": frozenset(range(4, 16))})

    result = recover(narrow_copy(dense, keep=4), None, digits("train"), config, eval_split=digits("test"),
                     plan=plan, dense=dense, progress=False)

    assert result.accuracy_bn_recal is None and result.bn_recal_images == 0
    assert result.accuracy_reconstructed == result.accuracy_after > result.accuracy_before + 5
    assert result.reconstruction["images"] == 300 and len(result.reconstruction["layers"]) == 3


class _FakePlan:
    """What recover() reads from a PrunePlan for reconstruction (the real one is tested below)."""

    def __init__(self, removed):
        self.removed = removed

    def removed_outputs(self):
        return self.removed


@pytest.mark.slow  # 14 s: reconstruction of the shipped ResNet-18 on real images; the small cases above run fast
def test_reference_resnet18_at_16x_is_far_above_chance_without_labels(fmnist_dir):
    """The real path: the shipped ResNet-18, pruned by the real planner to 15.8x fewer MACs."""
    from shrink.data import load_data
    from shrink.load import load_model
    from shrink.prune import PruneConfig, apply, plan

    dense = load_model("fmnist_resnet18").model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = plan(dense, torch.randn(2, 1, 28, 28), PruneConfig(importance="l2", ratio=0.75, round_to=8))
    train = load_data("fmnist", "train", data_dir=fmnist_dir)
    test = load_data("fmnist", "test", data_dir=fmnist_dir).subset(torch.arange(1000))
    recalibrated, refitted = apply(dense, p), apply(dense, p)
    recalibrate_bn(recalibrated, train, max_images=256)

    result = reconstruct(refitted, dense, p.removed_outputs(), train, max_images=256)

    assert len(result.layers) == 21 and not result.skipped  # 20 convs and the head
    bn_only, refit = evaluate_torch(recalibrated, test).accuracy, evaluate_torch(refitted, test).accuracy
    assert bn_only < 30 and refit > 75, (bn_only, refit)


def _options():
    from shrink.data import BatchOptions

    return BatchOptions(batch_size=64)


@pytest.mark.slow  # 7-14 s: plans and refits a whole Faster R-CNN
def test_a_two_stage_detectors_box_head_is_left_as_pruned():
    """Its rows follow the proposals each model chose itself: the dense rows describe other boxes."""
    from shrink.data import load_data
    from shrink.models.registry import create_model
    from shrink.models.spec import ModelSpec
    from shrink.prune import PruneConfig, apply, plan
    from shrink.recover.reconstruct import UNALIGNED

    torch.manual_seed(0)
    dense = create_model(ModelSpec(name="tvdet:fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=11,
                                   input_size=(128, 128))).eval()  # the scenes are 128x128
    scenes = load_data("fmnist-det", "train", scenes=4)
    example = (torch.randn(2, 3, 128, 128),)
    chosen = plan(dense, example, PruneConfig(ratio=0.5))
    pruned = apply(dense, chosen)
    result = reconstruct(pruned, dense, chosen.removed_outputs(), scenes, max_images=4)
    fitted = [f.name for f in result.layers]
    assert fitted and all(not name.startswith("detector.roi_heads.") for name in fitted)
    assert ("detector.roi_heads.box_head.fc6", UNALIGNED) in result.skipped
