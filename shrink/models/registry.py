"""One table from model names to constructors.

Names:
  fmnist_resnet18, fmnist_mobilenetv2   built-in Fashion-MNIST references (1 channel, CIFAR stem)
  fmnist_lraspp, fmnist_ssdlite         shipped references of tvseg:/tvdet: models (their cards name them)
  tv:NAME                               any torchvision classification model (random init)
  tvseg:NAME                            a torchvision segmentation model (shrink.models.dense)
  tvdet:NAME                            a torchvision detector: one-stage ones cut after their heads
                                        (shrink.models.dense), Faster R-CNN (shrink.models.two_stage)
  timm:NAME                             any timm model, when timm is installed
  path/to/file.py:factory               a function in the user's own file
"""

from __future__ import annotations

import difflib
import fnmatch
import types
from dataclasses import replace
from typing import Callable

import torch.nn as nn

from shrink.errors import ShrinkError
from shrink.models.code import ModelCode, split_code_name, untrusted_code_message
from shrink.models.dense import DetectionNet, SegmentationNet, one_stage, two_stage
from shrink.models.references import reference_names
from shrink.models.source import ModelSource, SourceKind
from shrink.models.spec import ModelSpec
from shrink.models.stems import adapt_stem

Factory = Callable[[ModelSpec], nn.Module]


class ModelRegistry:
    """Named model factories; a duplicate name is an error, an unknown one lists close matches."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._defaults: dict[str, ModelSpec] = {}

    def register(self, name: str, factory: Factory, default_spec: ModelSpec) -> None:
        if name in self._factories:
            raise ShrinkError(f"model {name!r} is already registered")
        self._factories[name] = factory
        self._defaults[name] = default_spec

    def names(self) -> list[str]:
        return sorted(self._factories)

    def default_spec(self, name: str) -> ModelSpec:
        self._check(name)
        return self._defaults[name]

    def build(self, spec: ModelSpec) -> nn.Module:
        self._check(spec.name)
        return self._factories[spec.name](spec)

    def _check(self, name: str) -> None:
        if name not in self._factories:
            raise ShrinkError(unknown_name_message(name, self.names()))


def unknown_name_message(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    return f"unknown model {name!r}{hint} (see `shrink models`)"


def _torchvision_build(spec: ModelSpec, tv_name: str) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if tv_name not in names:
        raise ShrinkError(unknown_name_message(f"tv:{tv_name}", [f"tv:{n}" for n in names]))
    kwargs = {"weights": None, "num_classes": spec.num_classes}
    if tv_name.startswith("vit_"):  # ViT's position embedding is sized for one input size
        kwargs["image_size"] = spec.input_size[0]
    model = torchvision.models.get_model(tv_name, **kwargs)
    return adapt_stem(model, in_chans=spec.in_chans, cifar_stem=spec.cifar_stem)


def _torchvision_dense_build(spec: ModelSpec, source: ModelSource) -> nn.Module:
    """A segmenter or a detector as a graph of plain tensors (shrink.models.dense, .two_stage)."""
    import torchvision

    segmentation = source.kind is SourceKind.TORCHVISION_SEGMENTATION
    every = torchvision.models.list_models(
        module=torchvision.models.segmentation if segmentation else torchvision.models.detection)
    names = every if segmentation else supported_detectors(every)
    if source.name not in names:
        prefix = source.text.partition(":")[0]
        message = unknown_name_message(source.text, [f"{prefix}:{n}" for n in names])
        if source.name in every:  # Mask and Keypoint R-CNN: a second head on the regions, not supported
            message = f"{source.text} adds mask or keypoint heads to its regions, which are not supported; " \
                "the supported detectors are " + ", ".join(f"{prefix}:{n}" for n in names)
        raise ShrinkError(message)
    if spec.in_chans != 3 or spec.cifar_stem:
        raise ShrinkError(f"{source.text} takes 3-channel images with its own stem (in_chans 3, no cifar stem)")
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": spec.num_classes}
    if segmentation:
        if source.name != "lraspp_mobilenet_v3_large":
            kwargs["aux_loss"] = False  # the auxiliary head is a training aid, not part of what ships
        return SegmentationNet(torchvision.models.get_model(source.name, **kwargs))
    detector = torchvision.models.get_model(source.name, **kwargs)
    if source.name in two_stage(names):
        from shrink.models.two_stage import TwoStageNet  # imports torchvision: only when built

        return TwoStageNet(detector, spec.input_size)
    return DetectionNet(detector, spec.input_size)


def supported_detectors(names: list[str]) -> list[str]:
    """The torchvision detection names shrink wraps: the one-stage ones and Faster R-CNN."""
    return one_stage(names) + two_stage(names)


def _timm_build(spec: ModelSpec, timm_name: str) -> nn.Module:
    try:
        import timm
    except ImportError as exc:
        raise ShrinkError("timm models need the timm extra: pip install 'torch-shrink[timm]'") from exc
    if timm_name not in timm.list_models():
        raise ShrinkError(unknown_name_message(f"timm:{timm_name}", [f"timm:{n}" for n in timm.list_models()]))
    model = timm.create_model(timm_name, pretrained=False, num_classes=spec.num_classes, in_chans=spec.in_chans)
    return adapt_stem(model, in_chans=spec.in_chans, cifar_stem=spec.cifar_stem)


def _file_build(spec: ModelSpec, code: ModelCode | None) -> nn.Module:
    """Run the user's model code, and only the bytes the user handed over (see shrink.models.code)."""
    path, factory_name = split_code_name(spec.name)
    if code is None:
        raise ShrinkError(untrusted_code_message(f"model {spec.name!r}", spec.name, spec.code_sha256))
    if spec.code_sha256 and spec.code_sha256 != code.sha256:
        raise ShrinkError(f"{code.path} (sha256 {code.sha256[:12]}...) is not the code {spec.name} was built with "
                          f"(sha256 {spec.code_sha256[:12]}...); pass that same file as --model-code")
    module = types.ModuleType(f"shrink_user_model_{code.path.stem}")
    module.__file__ = str(code.path)
    try:
        exec(compile(code.source, str(code.path), "exec"), module.__dict__)  # the user's own code, on their word
    except SyntaxError as exc:
        raise ShrinkError(f"model code {code.path} is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        public = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise ShrinkError(unknown_name_message(f"{path}:{factory_name}", [f"{path}:{n}" for n in public]))
    model = factory(num_classes=spec.num_classes, in_chans=spec.in_chans)
    if not isinstance(model, nn.Module):
        raise ShrinkError(f"{spec.name} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _reference(tv_name: str) -> Factory:
    def build(spec: ModelSpec) -> nn.Module:
        return _torchvision_build(spec, tv_name)

    return build


def builtin_registry() -> ModelRegistry:
    """The built-in reference architectures for Fashion-MNIST."""
    registry = ModelRegistry()
    for name, tv_name in (("fmnist_resnet18", "resnet18"), ("fmnist_mobilenetv2", "mobilenet_v2")):
        spec = ModelSpec(name=name, num_classes=10, in_chans=1, cifar_stem=True, input_size=(28, 28))
        registry.register(name, _reference(tv_name), spec)
    return registry


def default_spec(name: str, **overrides) -> ModelSpec:
    """The spec for `name`, with the caller's overrides (num_classes, in_chans, ...)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if ModelSource.parse(name).kind is not SourceKind.BUILTIN:
        return ModelSpec(name=name, **overrides)
    return replace(builtin_registry().default_spec(name), **overrides)


def create_model(name: str | ModelSpec, *, code: ModelCode | None = None, **overrides) -> nn.Module:
    """Build a model (random init) from a name or a ModelSpec. A `file.py:factory` model runs
    `code`, the file the user handed over (shrink.models.code); without it, it is refused."""
    spec = name if isinstance(name, ModelSpec) else default_spec(name, **overrides)
    source = ModelSource.parse(spec.name)
    if source.kind is SourceKind.TORCHVISION:
        return _torchvision_build(spec, source.name)
    if source.kind in (SourceKind.TORCHVISION_SEGMENTATION, SourceKind.TORCHVISION_DETECTION):
        return _torchvision_dense_build(spec, source)
    if source.kind is SourceKind.TIMM:
        return _timm_build(spec, source.name)
    if source.kind is SourceKind.CODE:
        return _file_build(spec, code)
    return builtin_registry().build(spec)


def list_models(pattern: str | None = None) -> list[str]:
    """Built-in names and the shipped references, plus every torchvision classification and
    segmentation model, the supported detectors (and timm's models, if installed)."""
    import torchvision


    names = builtin_registry().names()
    names += [n for n in reference_names() if n not in names]  # trained references of tvseg:/tvdet: models
    names += [f"tv:{n}" for n in torchvision.models.list_models(module=torchvision.models)]
    names += [f"tvseg:{n}" for n in torchvision.models.list_models(module=torchvision.models.segmentation)]
    names += [f"tvdet:{n}" for n in supported_detectors(torchvision.models.list_models(module=torchvision.models.detection))]
    try:
        import timm

        names += [f"timm:{n}" for n in timm.list_models()]
    except ImportError:
        pass
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, glob)]
    return names
