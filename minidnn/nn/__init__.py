"""Neural-network modules (``minidnn.nn``) and their functional ops (``minidnn.nn.functional``)."""
from . import functional
from .layers import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d,
                     ReLU, Sequential)
from .module import Module, Parameter

__all__ = ["functional", "Module", "Parameter", "Conv2d", "Linear", "MaxPool2d", "AvgPool2d",
           "ReLU", "Flatten", "Dropout", "BatchNorm2d", "Sequential"]
