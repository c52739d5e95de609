from __future__ import annotations

from pathlib import Path

import pytest
import torch

from build.errors import ZooError
from build.models import Classifier, build_classifier, load_weights, save_weights
from build.models.resnet import resnet18
from tests.conftest import PRE


def test_resnet18_is_the_cifar_variant() -> None:
    net = resnet18(10)
    assert net.stem[0].kernel_size == (3, 3) and net.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert 11.1e6 < sum(p.numel() for p in net.parameters()) < 11.2e6


def test_classifier_takes_raw_uint8_pixels(tiny_arch: str) -> None:
    model = build_classifier(tiny_arch, 10, PRE).eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    logits = model(images)
    assert logits.shape == (4, 10) and logits.dtype == torch.float32
    manual = model.backbone((images.float() - model.mean) / model.std)
    assert torch.allclose(logits, manual)
    assert "mean" not in model.state_dict(), "normalisation constants live in code, not checkpoints"


def test_weights_round_trip_in_fp16(tmp_path: Path, tiny_arch: str) -> None:
    model = build_classifier(tiny_arch, 10, PRE).eval()
    save_weights(model, tmp_path / "w.pt", {"arch": tiny_arch, "num_classes": 10, "test_accuracy": 0.5})
    loaded, meta = load_weights(tmp_path / "w.pt", PRE)
    assert meta["test_accuracy"] == 0.5
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(model(x), loaded(x), atol=5e-2)
    blob = torch.load(tmp_path / "w.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())


def test_checkpoint_that_does_not_fit_names_the_problem(tmp_path: Path, tiny_arch: str) -> None:
    save_weights(build_classifier(tiny_arch, 10, PRE), tmp_path / "w.pt", {"arch": "resnet18", "num_classes": 10})
    with pytest.raises(ZooError, match="does not fit architecture 'resnet18'"):
        load_weights(tmp_path / "w.pt", PRE)


def test_missing_and_corrupt_weights(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="teacher weights not found"):
        load_weights(tmp_path / "nope.pt", PRE)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ZooError, match="cannot read weights file"):
        load_weights(tmp_path / "junk.pt", PRE)


def test_unknown_architecture() -> None:
    with pytest.raises(ZooError, match="unknown architecture 'vgg'"):
        build_classifier("vgg", 10, PRE)


def test_a_channel_pruned_network_loads_into_its_base_architecture(tmp_path: Path, tiny_arch: str) -> None:
    from build.steps.prune import _pruner

    model = build_classifier(tiny_arch, 10, PRE).eval()
    _pruner(model, 0.5, 1, "l2", None).step()
    save_weights(model, tmp_path / "w.pt", {"arch": tiny_arch, "num_classes": 10, "channel_pruned": True})
    loaded, _ = load_weights(tmp_path / "w.pt", PRE)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(model(x), loaded(x), atol=5e-2)
    fc, loaded_fc = model.backbone.fc, loaded.backbone.fc
    assert isinstance(fc, torch.nn.Linear) and isinstance(loaded_fc, torch.nn.Linear)
    assert loaded_fc.in_features == fc.in_features < 16
    save_weights(model, tmp_path / "unmarked.pt", {"arch": tiny_arch, "num_classes": 10})
    with pytest.raises(ZooError, match="does not fit architecture 'tiny'"):
        load_weights(tmp_path / "unmarked.pt", PRE)


@pytest.mark.parametrize("arch", ["resnet20", "mobilenetv2", "widenet"])
def test_every_student_exports_and_prepares_for_int8(tmp_path: Path, arch: str) -> None:
    """The int8, QAT and pruned variants start from a student's ONNX file: it must pass ONNX Runtime's quantization
    pre-processing (symbolic shape inference), which a Reshape after AdaptiveMaxPool2d once broke."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from build.export import export_onnx

    export_onnx(build_classifier(arch, 10, PRE), tmp_path / "model.onnx")
    quant_pre_process(str(tmp_path / "model.onnx"), str(tmp_path / "prepared.onnx"))
    assert (tmp_path / "prepared.onnx").stat().st_size > 0


def test_a_qat_network_reloads_with_its_batch_norms_folded(tmp_path: Path) -> None:
    from build.steps.qat import fold_batchnorm

    model = build_classifier("widenet", 10, PRE).eval()
    folded = fold_batchnorm(model)
    save_weights(model, tmp_path / "qat.pt", {"arch": "widenet", "num_classes": 10, "batchnorm_folded": True})
    loaded, _ = load_weights(tmp_path / "qat.pt", PRE)
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    assert folded == 7 and torch.allclose(loaded(x), model(x).half().float(), atol=1e-2)


def test_builtin_networks_are_shaped_for_their_input() -> None:
    """At 32 pixels a builtin is its CIFAR body; from 64 pixels a strided stem comes first, so that every student
    at 224 pixels is smaller than an ImageNet-shaped ResNet-18 (the one it would learn from there)."""
    from build.card import Preprocess
    from build.complexity import macs_and_params
    from build.models import ARCHITECTURES
    from build.models.stem import DownsampleStem, halvings
    from tests.byo_models import imagenet_resnet18

    assert [halvings(s) for s in (32, 48, 63, 64, 127, 128, 224, 512)] == [0, 0, 0, 1, 1, 2, 2, 4]
    cifar = build_classifier("widenet", 10, PRE)
    assert cifar.backbone.state_dict().keys() == ARCHITECTURES["widenet"](10).state_dict().keys()
    at224 = Preprocess((3, 224, 224), PRE.mean, PRE.std)
    teacher = macs_and_params(Classifier(imagenet_resnet18(), at224))[0]
    assert 1.7e9 < teacher < 1.9e9
    for arch in ("widenet", "resnet20", "mobilenetv2"):
        model = build_classifier(arch, 10, at224).eval()
        assert isinstance(next(iter(model.backbone.children())), DownsampleStem)
        assert model(torch.zeros((2, 3, 224, 224), dtype=torch.uint8)).shape == (2, 10)
        assert macs_and_params(model)[0] * 5 < teacher, arch
