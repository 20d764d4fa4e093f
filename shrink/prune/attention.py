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

import torch.nn as nn


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
