from __future__ import annotations

from pathlib import Path

import pytest

from build.card import check_unique, load_card
from build.errors import ZooError
from tests.conftest import ROOT

GOOD = '''
name = "mynet"
source = "torch:tests.byo_models:small_net"
input = [3, 48, 48]
mean = [125.0, 122.0, 113.0]
std = [63.0, 62.0, 66.0]
args = {num_classes = 4}
'''


def write(tmp_path: Path, text: str, name: str = "card.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_default_card_describes_todays_resnet18() -> None:
    card = load_card(ROOT / "models" / "resnet18_cifar10.toml")
    assert card.name == "resnet18" and card.source == "builtin:resnet18" and card.input == (3, 32, 32)
    assert card.weights == ROOT / "weights" / "resnet18_cifar10.pt" and card.data is None
    assert card.preprocess.mean == pytest.approx((0.4914 * 255, 0.4822 * 255, 0.4465 * 255))


def test_paths_are_relative_to_the_cards_folder(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "net.onnx").write_bytes(b"x")
    (tmp_path / "data").mkdir()
    card = load_card(write(tmp_path / "models", GOOD.replace("torch:tests.byo_models:small_net", "onnx:../net.onnx")
                           + 'data = "../data"\n'))
    assert card.spec == str(tmp_path / "net.onnx") and card.data == str(tmp_path / "data")
    assert card.args == {"num_classes": 4} and card.kind == "onnx"


@pytest.mark.parametrize("edit, field, words", [
    (lambda t: t.replace('name = "mynet"\n', ""), "name", "missing"),
    (lambda t: t + "colour = 3\n", "colour", "unknown field"),
    (lambda t: t.replace('"mynet"', '"my_net"'), "name", "lower-case"),
    (lambda t: t.replace("[3, 48, 48]", "[3, 48]"), "input", "not [C, H, W]"),
    (lambda t: t.replace("[3, 48, 48]", '"48x48"'), "input", "expected list"),
    (lambda t: t.replace("[3, 48, 48]", "[4, 48, 48]"), "input", "4 channels"),
    (lambda t: t.replace("[125.0, 122.0, 113.0]", "[125.0]"), "mean", "not 3 numbers"),
    (lambda t: t.replace("[63.0, 62.0, 66.0]", "[63.0, 0, 66.0]"), "std", "<= 0"),
    (lambda t: t.replace("torch:tests.byo_models:small_net", "pytorch:x"), "source", "is not builtin"),
    (lambda t: t.replace("torch:tests.byo_models:small_net", "onnx:nowhere.onnx"), "source", "not found"),
    (lambda t: t + 'weights = "nowhere.pt"\n', "weights", "not found"),
    (lambda t: t + 'data = "nowhere"\n', "data", "not found"),
])
def test_a_bad_field_is_named_with_the_card(tmp_path: Path, edit, field: str, words: str) -> None:
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(ZooError) as info:
        load_card(path)
    message = str(info.value)
    assert message.startswith(f"card {path}: {field}: ") and words in message and "\n" not in message


def test_missing_and_malformed_cards(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="model card .* not found"):
        load_card(tmp_path / "none.toml")
    with pytest.raises(ZooError, match="not valid TOML"):
        load_card(write(tmp_path, "name = "))


def test_two_cards_may_not_share_a_name(tmp_path: Path) -> None:
    cards = [load_card(write(tmp_path, GOOD, "a.toml")), load_card(write(tmp_path, GOOD, "b.toml"))]
    with pytest.raises(ZooError, match=r"b.toml: name: 'mynet' is also the name of card .*a.toml"):
        check_unique(cards)


def example_card(tmp_path: Path) -> Path:
    """The documented torchvision example card, beside a weights file of its own name (the user's state dict)."""
    card = tmp_path / "torchvision_resnet18.toml"
    card.write_text((ROOT / "models" / "examples" / "torchvision_resnet18.toml").read_text())
    (tmp_path / "tvresnet18.pt").write_bytes(b"")
    return card


def test_the_torchvision_example_card_is_a_valid_224_pixel_card(tmp_path: Path) -> None:
    card = load_card(example_card(tmp_path), default_data="cifar10")
    assert (card.name, card.input, card.args) == ("tvresnet18", (3, 224, 224), {"num_classes": 10})
    assert card.source == "torch:torchvision.models:resnet18" and card.weights == tmp_path / "tvresnet18.pt"


def test_the_torchvision_example_loads_its_state_dict(tmp_path: Path) -> None:
    pytest.importorskip("torchvision", reason="the optional extra: pip install -e '.[torchvision]'",
                        exc_type=ImportError)
    import torch
    import torchvision  # type: ignore[import-not-found]  # the optional extra

    from build.sources import network

    path = example_card(tmp_path)
    torch.manual_seed(0)
    trained = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(trained.state_dict(), tmp_path / "tvresnet18.pt")
    loaded = network(load_card(path, default_data="cifar10")).eval()
    x = torch.rand(2, 3, 224, 224)
    assert torch.equal(loaded(x), trained(x)), "the card's network is the saved one"
