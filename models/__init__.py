"""Model zoo (torch-free until a model is built). Add your own with `register_model`.

Every model takes ``bn`` (BatchNorm variant), ``input_shape`` (one sample, e.g. ``(1, 28, 28)``)
and ``num_classes``, and keeps them as attributes so checkpoints can rebuild it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hil.registry import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry[Any] = Registry(
    "model",
    {
        "mlp": "hil.models.mlp:MLP",
        "lenet5": "hil.models.lenet:LeNet5",
        "cnn-s": "hil.models.cnn_s:CNNS",
        "vgg11": "hil.models.vgg:VGG11",
        "resnet18": "hil.models.resnet:ResNet18",
        "resnet18-cifar": "hil.models.resnet:resnet18_cifar",
    },
)
"""Model name → class (or factory) taking ``bn``, ``input_shape``, ``num_classes``."""


def register_model(name: str):  # noqa: ANN201 - decorator
    """Register a model class/factory under ``name`` (duplicate names are an error)."""
    return MODELS.register(name)


def list_models() -> list[str]:
    """Names of all registered models."""
    return MODELS.names()


def create_model(name: str, *, bn: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: Registry name (``mlp``, ``lenet5``, ``cnn-s``, or a user's).
        bn: BatchNorm variant.
        **kwargs: ``input_shape``, ``num_classes`` and model-specific options.

    Raises:
        UnknownNameError: No such model.
        ModelError: The model cannot be built for that input shape.
    """
    return MODELS.get(name)(bn=bn, **kwargs)


__all__ = ["MODELS", "create_model", "list_models", "register_model"]
