"""Attention: heads discovered for nn.MultiheadAttention, torchvision ViT and timm-style fused qkv;
whole heads or head dims removed; module attributes fixed so forward still works."""

import pytest
import torch
from prune_fixtures import ConvAttention, FusedQKVNet, small_vit

from shrink.prune import PruneConfig, PruneWarning, apply, check_exactness, plan


@pytest.mark.parametrize("mode, heads, head_dim", [("dims", 4, 4), ("heads", 2, 8)])
def test_multihead_attention_modes(mode, heads, head_dim):
    model, x = ConvAttention(width=32, heads=4), torch.randn(2, 3, 8, 8)
    result = plan(model, x, PruneConfig(ratio=0.5, attention=mode, round_to=1))
    pruned = apply(model, result)
    assert (pruned.attn.embed_dim, pruned.attn.num_heads, pruned.attn.head_dim) == (16, heads, head_dim)
    assert pruned(x).shape == (2, 10)
    report = check_exactness(model, result, x)
    assert report.passed
    assert report.kind == ("exact" if mode == "heads" else "exact+structural")


def test_vit_attributes_follow_the_pruned_weights():
    model, x = small_vit(num_heads=4), torch.randn(2, 3, 32, 32)
    result = plan(model, x, PruneConfig(ratio=0.5, attention="heads", round_to=1))
    pruned = apply(model, result)
    assert pruned.hidden_dim == pruned.conv_proj.out_channels == 32
    attention = pruned.encoder.layers[0].self_attention
    assert (attention.num_heads, attention.head_dim) == (2, 16)
    assert pruned(x).shape == (2, 10)
    assert result.mac_reduction > 3.0


def test_attention_skip_leaves_attention_groups_whole():
    model, x = ConvAttention(width=32, heads=4), torch.randn(2, 3, 8, 8)
    with pytest.warns(PruneWarning, match="attention='skip'"):
        result = plan(model, x, PruneConfig(ratio=0.5, attention="skip", round_to=1))
    assert apply(model, result).attn.embed_dim == 32
    assert [g.root for g in result.groups] == ["mlp.0"]


@pytest.mark.parametrize("mode", ["dims", "heads"])
def test_fused_qkv_attention(mode):
    model, x = FusedQKVNet().eval(), torch.randn(2, 5, 8)
    result = plan(model, x, PruneConfig(ratio=0.5, attention=mode, round_to=1))
    roots = {g.root for g in result.groups}
    assert roots == {"embed", "attn.qkv"}
    pruned = apply(model, result)
    assert pruned.attn.qkv.out_features == 48 and pruned.attn.proj.in_features == 16
    expected_heads = 2 if mode == "heads" else 4
    assert (pruned.attn.num_heads, pruned.attn.head_dim) == (expected_heads, 16 // expected_heads)
    report = check_exactness(model, result, x)
    assert report.passed and report.kind == ("exact" if mode == "heads" else "exact+structural"), report.summary()
