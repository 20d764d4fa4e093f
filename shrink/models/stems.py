"""Adapting torchvision-style architectures to other input channels and to small images.

A CIFAR-style stem keeps the first layers at full resolution: the first convolution gets stride 1
(and at most a 3x3 kernel) and a stem max-pool is removed. That is what small images like
Fashion-MNIST (28x28) need to keep enough spatial extent for a deep network.
"""

from __future__ import annotations

import torch.nn as nn

from shrink.errors import ShrinkError


def _first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            return parent, attr, module
    raise ShrinkError(f"{type(model).__name__} has no Conv2d to adapt the input stem")


def adapt_stem(model: nn.Module, *, in_chans: int, cifar_stem: bool) -> nn.Module:
    """Replace the first conv for `in_chans` inputs and, if `cifar_stem`, make it stride 1."""
    parent, attr, conv = _first_conv(model)
    if in_chans == conv.in_channels and not cifar_stem:
        return model
    kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    if cifar_stem:
        k = min(kernel[0], 3)
        kernel, stride, padding = (k, k), (1, 1), (k // 2, k // 2)
        if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
            model.maxpool = nn.Identity()
    new_conv = nn.Conv2d(
        in_chans,
        conv.out_channels,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=conv.dilation,
        groups=1 if conv.groups == conv.in_channels else conv.groups,
        bias=conv.bias is not None,
    )
    setattr(parent, attr, new_conv)
    return model
