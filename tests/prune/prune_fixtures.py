"""Small models for the prune tests: each one exercises one kind of coupling."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision


def tv_model(name: str, size: int, num_classes: int = 10) -> tuple[nn.Module, tuple[torch.Tensor]]:
    """A random-init torchvision classifier and a (2, 3, size, size) input."""
    kwargs = {"weights": None, "num_classes": num_classes}
    if name.startswith("vit_"):
        kwargs["image_size"] = size
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, **kwargs).eval()
    return model, (torch.randn(2, 3, size, size),)


def small_torchvision(name: str, num_classes: int = 10) -> nn.Module:
    """A narrow, shallow instance of a torchvision architecture class: the same forward code as
    the zoo's members (which the slow suite covers), a fraction of the cost."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    from torchvision.models.densenet import DenseNet

    torch.manual_seed(0)
    if name == "densenet":
        model = DenseNet(growth_rate=16, block_config=(2, 3, 2), num_init_features=32, bn_size=2, num_classes=num_classes)
    elif name == "convnext":
        blocks = [CNBlockConfig(16, 32, 2), CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 1)]
        model = ConvNeXt(blocks, num_classes=num_classes)
    else:
        raise ValueError(name)
    return model.eval()


def small_vit(num_heads: int = 4) -> nn.Module:
    """torchvision's VisionTransformer, small: 2 layers, 64 wide, 32x32 inputs in 8x8 patches."""
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=num_heads, hidden_dim=64, mlp_dim=128, num_classes=10
    ).eval()


class ConvAttention(nn.Module):
    """Conv stem -> tokens -> nn.MultiheadAttention (no LayerNorm) -> head: every group is exact,
    including whole attention heads."""

    def __init__(self, width: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 64), nn.GELU(), nn.Linear(64, width))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        tokens = torch.relu(self.stem(x)).flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0]
        tokens = tokens + self.mlp(tokens)
        return self.head(tokens.mean(1))


class FeatureConcat(nn.Module):
    """Two branches joined by torch.cat(dim=-1) on (B, L, C) features: a channel concat that
    recent torch reports with dim 2**64-1 (torch-pruning #532)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 24)
        self.b = nn.Linear(16, 16)
        self.mix = nn.Linear(40, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        joined = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=-1)
        return self.head(torch.relu(self.mix(joined)).mean(1))


class RotaryBlock(nn.Module):
    """A rotary (RoPE-style) block: chunk(-1) and cat(-1) inside a cycle, the pattern of #532."""

    def __init__(self, dim: int = 16, length: int = 6) -> None:
        super().__init__()
        self.pre = nn.Linear(dim, 32)
        self.q = nn.Linear(32, dim)
        self.head = nn.Linear(dim, 4)
        angle = torch.arange(length)[:, None] * torch.arange(dim // 2)[None, :] * 0.1
        self.register_buffer("cos", torch.cat([angle.cos(), angle.cos()], -1))
        self.register_buffer("sin", torch.cat([angle.sin(), angle.sin()], -1))

    def forward(self, x):
        q = self.q(torch.relu(self.pre(x)))
        first, second = q.chunk(2, dim=-1)
        q = q * self.cos + torch.cat([-second, first], dim=-1) * self.sin
        return self.head(q).mean(1)


class PythonLoop(nn.Module):
    """A forward pass that never ends: stands in for a runaway the guards must stop."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = self.conv(x)
        while True:
            y = y * 1.0


class MemoryHog(nn.Module):
    """A forward pass that keeps allocating."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        keep = []
        while True:
            keep.append(torch.ones(1 << 22))


class FusedQKVAttention(nn.Module):
    """The structure of timm's Attention: one qkv Linear, reshape/permute/unbind, proj."""

    def __init__(self, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class FusedQKVNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.attn = FusedQKVAttention()
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        x = self.embed(x)
        return self.head((x + self.attn(x)).mean(1))
