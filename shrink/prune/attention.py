"""Attention after pruning: keep module attributes consistent with the pruned weights.

torch-pruning resizes the weights of `nn.MultiheadAttention`, but the attributes that `forward`
reads (heads, head size, hidden width) must follow:

- nn.MultiheadAttention: num_heads (changed when whole heads go), head_dim, embed_dim, kdim, vdim;
- torchvision VisionTransformer: hidden_dim, used to reshape the patch embedding;
- timm-style Attention (a module with `qkv` Linear, `num_heads`, `head_dim`): head_dim.

Heads are discovered in groups.py: in "dims" mode the same dims go in every head (head count kept),
in "heads" mode whole heads go (head size kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from torch_pruning.dependency import Dependency

from shrink.prune.groups import CoupledGroup, HeadInfo, Member, to_tp_group
from shrink.prune.plan import LeftWhole


def fix_attention_attributes(model: nn.Module, num_heads: dict[str, int]) -> None:
    """Make attention modules' attributes match their pruned weights. `num_heads` gives the new
    head count of modules that lost whole heads."""
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            _fix_mha(module, num_heads.get(name, module.num_heads))
        elif _is_timm_attention(module):
            module.num_heads = num_heads.get(name, module.num_heads)
            module.head_dim = module.qkv.out_features // 3 // module.num_heads
        elif _is_torchvision_vit(module):
            module.hidden_dim = module.conv_proj.out_channels


def _fix_mha(mha: nn.MultiheadAttention, heads: int) -> None:
    if mha.in_proj_weight is not None:
        embed_dim = mha.in_proj_weight.shape[0] // 3
    else:
        embed_dim = mha.q_proj_weight.shape[0]
    mha.embed_dim = embed_dim
    mha.num_heads = heads
    mha.head_dim = embed_dim // heads
    if mha._qkv_same_embed_dim:
        mha.kdim = mha.vdim = embed_dim


def _is_timm_attention(module: nn.Module) -> bool:
    return isinstance(getattr(module, "qkv", None), nn.Linear) and hasattr(module, "num_heads") and hasattr(module, "head_dim")


def _is_torchvision_vit(module: nn.Module) -> bool:
    return hasattr(module, "hidden_dim") and isinstance(getattr(module, "conv_proj", None), nn.Conv2d)


# ----------------------------------------------------------------------------- fused qkv attention


@dataclass
class FusedAttention:
    groups: list  # CoupledGroups, one per attention module
    left_whole: list  # LeftWhole notes
    claimed: set  # qkv Linear modules: no generic group may start from them


def fused_attention_groups(graph, attention: str) -> FusedAttention:
    """One group per timm-style attention module (fused `qkv` Linear, `proj` Linear, `num_heads`).

    torch-pruning's walk from `qkv` through reshape/permute/unbind does not line q, k and v up with
    `proj`'s inputs (our check catches that), so the group is built from the known layout instead:
    qkv output row s*E + h*head_dim + d (s = q, k, v) and proj input h*head_dim + d go together.
    """
    found = FusedAttention([], [], set())
    for name, module in graph.model.named_modules():
        if not _is_fused_attention(graph, module):
            continue
        found.claimed.add(module.qkv)
        if attention == "skip":
            found.left_whole.append(LeftWhole(f"{name}.qkv", f"attention {name} (attention='skip')", (f"{name}.qkv",)))
            continue
        found.groups.append(_fused_group(graph, name, module, attention))
    return found


def _is_fused_attention(graph, module: nn.Module) -> bool:
    qkv, proj = getattr(module, "qkv", None), getattr(module, "proj", None)
    return (
        _is_timm_attention(module)
        and isinstance(proj, nn.Linear)
        and qkv in graph.module2node
        and proj in graph.module2node
        and qkv.out_features == 3 * proj.in_features
        and proj.in_features % module.num_heads == 0
    )


def _fused_group(graph, name: str, module: nn.Module, attention: str) -> CoupledGroup:
    width = module.proj.in_features  # E = heads * head_dim
    heads, head_dim = module.num_heads, width // module.num_heads
    qkv_node, proj_node = graph.module2node[module.qkv], graph.module2node[module.proj]
    cut_rows = graph.get_pruner_of_module(module.qkv).prune_out_channels
    cut_columns = graph.get_pruner_of_module(module.proj).prune_in_channels
    rows = list(range(3 * width))
    members = [
        Member(f"{name}.qkv", "out", "LINEAR", rows, rows, None, Dependency(cut_rows, cut_rows, qkv_node, qkv_node)),
        Member(f"{name}.proj", "in", "LINEAR", rows[:width], rows[:width], None, Dependency(cut_rows, cut_columns, qkv_node, proj_node)),
    ]
    if attention == "heads":  # a unit is one head of q, k and v
        units = [[s * width + h * head_dim + d for s in range(3) for d in range(head_dim)] for h in range(heads)]
        inexact = None
    else:  # a unit is one dim, in every head of q, k and v
        units = [[s * width + h * head_dim + d for s in range(3) for h in range(heads)] for d in range(head_dim)]
        inexact = f"attention {name} loses head dims, which changes its softmax scale"
    group = CoupledGroup(f"{name}.qkv", 3 * width, members, to_tp_group(graph, members), [sorted(u) for u in units], inexact)
    group.heads = {f"{name}.qkv": HeadInfo(name, heads, head_dim, copies=3)}
    return group
