"""Reference models: LeNet-5 (Caffe layout), LeNet-300-100, a small VGG, CaffeNet convs."""
from __future__ import annotations

from ..nn import Module
from .caffenet import CAFFENET_CONVS, ConvShape, caffenet_conv_layer
from .lenet import LeNet5, LeNet300100
from .vgg import SmallVGG

MODELS = {"lenet5": LeNet5, "lenet300100": LeNet300100, "smallvgg": SmallVGG}


def get_model(name: str, **kwargs) -> Module:
    """Build a model by name: 'lenet5', 'lenet300100' or 'smallvgg'."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[key](**kwargs)


__all__ = ["LeNet5", "LeNet300100", "SmallVGG", "CAFFENET_CONVS", "ConvShape",
           "caffenet_conv_layer", "get_model", "MODELS"]
