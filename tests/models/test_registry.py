"""Registry names, globbing, metadata and user models."""

import pytest
from torch import nn

from dynbench.errors import DynbenchError
from dynbench.models import create_model, list_models, model_info, register_model
from dynbench.models.registry import load_user_model, parse_input_size, unregister_model


def test_baseline_names():
    baselines = [n for n in list_models("resnet*") if model_info(n).is_baseline]
    assert baselines == [
        "resnet10",
        "resnet101",
        "resnet101_v1",
        "resnet18",
        "resnet18_cifar",
        "resnet34",
        "resnet50",
        "resnet50_v1",
    ]
    assert model_info("resnet18_cifar").input_size == (3, 32, 32)
    assert model_info("resnet18_cifar_dyconv_4x").family == "resnet18_cifar"
    assert list_models("mobilenetv2_???") == [  # ? matches one character: no variants
        "mobilenetv2_035",
        "mobilenetv2_050",
        "mobilenetv2_075",
        "mobilenetv2_100",
    ]
    assert list_models("resnet18,mobilenetv2_100") == ["mobilenetv2_100", "resnet18"]


def test_metadata():
    info = model_info("resnet50_v1")
    assert info.family == "resnet50_v1" and info.operator == "static" and info.is_baseline
    assert info.input_size == (3, 224, 224)
    assert "v1" in info.description


def test_register_model_decorator():
    @register_model(description="a test model", tags=("test",))
    def _dynbench_test_model(**kw):
        return nn.Linear(2, 2)

    try:
        assert isinstance(create_model("_dynbench_test_model"), nn.Linear)
        assert model_info("_dynbench_test_model").tags == ("test",)
    finally:
        unregister_model("_dynbench_test_model")


def test_unknown_model_message():
    with pytest.raises(DynbenchError, match="unknown model 'resnet19'"):
        create_model("resnet19")


def test_user_model_loader(tmp_path, monkeypatch):
    (tmp_path / "registry_usernet.py").write_text(
        "from torch import nn\ndef build():\n    return nn.Conv2d(3, 3, 1)\n"
    )
    monkeypatch.chdir(tmp_path)
    info, model = load_user_model("registry_usernet:build")
    assert isinstance(model, nn.Conv2d) and info.operator == "user"


def test_parse_input_size():
    assert parse_input_size("3,32,32") == (3, 32, 32)
    assert parse_input_size("3x64x64") == (3, 64, 64)
    for bad in ("3,32", "a,b,c", "0,32,32", "3,32,32,1"):
        with pytest.raises(DynbenchError, match="three positive integers"):
            parse_input_size(bad)
