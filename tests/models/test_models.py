"""The model registry and the built-in models."""

from __future__ import annotations

import pytest
import torch

from hil.errors import ModelError, UnknownNameError
from hil.models import MODELS, create_model, list_models, register_model


@pytest.mark.parametrize("name", ["mlp", "lenet5", "cnn-s"])
@pytest.mark.parametrize("bn", [False, True])
def test_models_build_and_rebuild_from_config(name: str, bn: bool) -> None:
    model = create_model(name, bn=bn)
    x = torch.randn(3, *model.input_shape)
    assert model(x).shape == (3, model.num_classes)
    twin = create_model(name, **model.config())
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert any(isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in model.modules()) == bn


def test_default_geometries() -> None:
    assert create_model("cnn-s").input_shape == (1, 10, 49)
    assert create_model("cnn-s").num_classes == 12
    assert create_model("cnn-s").fc1.in_features == 30 * 4 * 11
    assert create_model("lenet5").fc1.in_features == 16 * 5 * 5
    assert [create_model("mlp").fc1.out_features, create_model("mlp").fc4.in_features] == [64, 64]


def test_models_adapt_to_dataset_shapes() -> None:
    assert create_model("mlp", input_shape=(1, 8, 8), num_classes=10).fc1.in_features == 64
    assert create_model("lenet5", input_shape=(3, 32, 32)).fc1.in_features == 16 * 6 * 6


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [("lenet5", {"input_shape": (1, 8, 8)}, "lenet5 cannot take inputs of shape \\(1, 8, 8\\).*--model mlp"),
     ("lenet5", {"input_shape": (28, 28)}, "lenet5 needs an input shape of 3 positive sizes"),
     ("cnn-s", {"input_shape": (1, 3, 9)}, "cnn-s cannot take inputs"),
     ("mlp", {"num_classes": 1}, "mlp needs num_classes ≥ 2")],
)
def test_impossible_geometry_is_a_clear_error(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        create_model(name, **kwargs)


def test_unknown_model_lists_names() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'resnet9'; choose one of: cnn-s, lenet5, mlp"):
        create_model("resnet9")


def test_register_model() -> None:
    @register_model("test-tiny")
    class Tiny(torch.nn.Linear):
        def __init__(self, bn: bool = False, input_shape: tuple[int, ...] = (4,), num_classes: int = 2) -> None:
            super().__init__(input_shape[0], num_classes)

    try:
        assert "test-tiny" in list_models()
        assert isinstance(create_model("test-tiny"), Tiny)
        with pytest.raises(ValueError, match="already registered"):
            register_model("test-tiny")(Tiny)
    finally:
        MODELS._loaded.pop("test-tiny", None)
