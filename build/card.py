"""Model cards: one TOML file per model, the only place a model's facts (name, source, shape, statistics) live.

    name = "resnet18"                       # prefix of every Triton model name: <name>_<variant>[_<runtime>]
    source = "builtin:resnet18"             # or "torch:package.module:factory", or "onnx:path/to/model.onnx"
    weights = "../weights/resnet18_cifar10.pt"
    input = [3, 48, 48]                     # C, H, W; images are resized to H x W; C = 1 means grayscale
    mean = [125.3, 123.0, 113.9]            # 0-255 scale; put inside the exported graph
    std = [63.0, 62.1, 66.7]
    data = "cifar10"                        # ImageFolder dir or .tar.gz (train/, test/), or 'cifar10'

Relative paths are relative to the card's folder. Every problem is a one-line ZooError naming the card and field.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from build.errors import ZooError

SOURCE_KINDS = ("builtin", "torch", "onnx")
NAME = re.compile(r"^[a-z][a-z0-9]*$")  # no '_': it separates name, variant and runtime in Triton model names
REQUIRED = ("name", "source", "input", "mean", "std")
OPTIONAL = ("weights", "data", "normalize", "classes", "args", "description")


@dataclass(frozen=True)
class Preprocess:
    """What the graph does to raw uint8 pixels before the network: (x - mean) / std, per channel."""

    input: tuple[int, int, int]  # C, H, W
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.input[0]


@dataclass(frozen=True)
class ModelCard:
    name: str
    source: str  # "<kind>:<spec>", spec resolved (onnx paths absolute)
    input: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    path: Path | None = None  # the card file, for messages
    weights: Path | None = None
    data: str | None = None  # None: --data, else $TRITONZOO_DATA, else the official CIFAR-10 download
    normalize: bool = True  # False: the network takes raw 0-255 floats (mean and std are not applied)
    classes: tuple[str, ...] | None = None  # when given, the data's classes must be these
    args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of a torch factory
    description: str = ""

    @property
    def kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def spec(self) -> str:
        return self.source.split(":", 1)[1]

    @property
    def preprocess(self) -> Preprocess:
        if not self.normalize:
            return Preprocess(self.input, (0.0,) * self.input[0], (1.0,) * self.input[0])
        return Preprocess(self.input, self.mean, self.std)

    def error(self, field_name: str, problem: str, fix: str) -> ZooError:
        return ZooError(f"card {self.path or self.name}: {field_name}: {problem}; {fix}")


def load_card(path: Path, default_data: str | None = None) -> ModelCard:
    """Parse and check a card; `default_data` (the --data option) is the dataset of a card that names none."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"model card {path} not found; pass --card with the path of a .toml model card")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"card {path}: not valid TOML ({exc}); fix the syntax") from exc
    return parse_card(raw, path, default_data)


def parse_card(raw: dict[str, Any], path: Path, default_data: str | None = None) -> ModelCard:
    def bad(field_name: str, problem: str, fix: str) -> ZooError:
        return ZooError(f"card {path}: {field_name}: {problem}; {fix}")

    for key in REQUIRED:
        if key not in raw:
            raise bad(key, "missing", "add it (README: Bring your own model lists every field)")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise bad(unknown[0], "unknown field", f"the fields are {', '.join(REQUIRED + OPTIONAL)}")
    name = _typed(raw, "name", str, bad)
    if not NAME.match(name):
        raise bad("name", f"{name!r} is not lower-case letters and digits", "e.g. name = \"mynet\"")
    channels, height, width = _dims(raw, bad)
    mean, std = _stats(raw, "mean", channels, bad), _stats(raw, "std", channels, bad)
    if any(s <= 0 for s in std):
        raise bad("std", f"{list(std)} has a value <= 0", "give each channel's standard deviation, 0-255 scale")
    folder = path.parent
    return ModelCard(
        name=name, source=_source(raw, folder, bad), input=(channels, height, width), mean=mean, std=std, path=path,
        weights=_path(raw, "weights", folder, bad), data=_data(raw, folder, bad) or _absolute(default_data),
        normalize=_typed(raw, "normalize", bool, bad, True), classes=_classes(raw, bad),
        args=_typed(raw, "args", dict, bad, {}), description=_typed(raw, "description", str, bad, ""),
    )


def _typed(raw: dict, key: str, kind: type, bad, default: Any = None) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, kind):
        raise bad(key, f"expected {kind.__name__}, got {type(value).__name__} {value!r}", "fix its type")
    return value


def _dims(raw: dict, bad) -> tuple[int, int, int]:
    dims = _typed(raw, "input", list, bad)
    if len(dims) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise bad("input", f"{dims!r} is not [C, H, W] of positive integers", "e.g. input = [3, 224, 224]")
    if dims[0] not in (1, 3):
        raise bad("input", f"{dims[0]} channels", "images are RGB (3) or grayscale (1)")
    return dims[0], dims[1], dims[2]


def _stats(raw: dict, key: str, channels: int, bad) -> tuple[float, ...]:
    values = _typed(raw, key, list, bad)
    if len(values) != channels or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise bad(key, f"{values!r} is not {channels} numbers", f"give one value per input channel ({channels})")
    return tuple(float(v) for v in values)


def _source(raw: dict, folder: Path, bad) -> str:
    source = _typed(raw, "source", str, bad)
    kind, sep, spec = source.partition(":")
    if not sep or kind not in SOURCE_KINDS or not spec:
        raise bad("source", f"{source!r} is not builtin:<arch>, torch:<module>:<factory> or onnx:<path>",
                  "e.g. source = \"torch:mypackage.models:make_net\"")
    if kind == "torch" and spec.count(":") != 1:
        raise bad("source", f"{source!r} does not name a module and a factory", "write torch:package.module:factory")
    if kind == "onnx":
        onnx_path = (folder / spec).resolve()
        if not onnx_path.is_file():
            raise bad("source", f"ONNX file {onnx_path} not found", "fix the path (relative to the card's folder)")
        return f"onnx:{onnx_path}"
    return source


def _path(raw: dict, key: str, folder: Path, bad) -> Path | None:
    value = _typed(raw, key, str, bad)
    if value is None:
        return None
    path = (folder / os.path.expanduser(value)).resolve()
    if not path.exists():
        raise bad(key, f"{path} not found", "fix the path (relative to the card's folder)")
    return path


def _data(raw: dict, folder: Path, bad) -> str | None:
    value = _typed(raw, "data", str, bad)
    if value is None or value == "cifar10":
        return value
    path = (folder / os.path.expanduser(value)).resolve()
    if not path.exists():
        raise bad("data", f"{path} not found", "fix the path, or pass --data")
    return str(path)


def _absolute(data: str | None) -> str | None:
    """The manifest records where the data is, for load tests run from any folder: an absolute path."""
    if data is None or data == "cifar10" or not Path(data).expanduser().exists():
        return data
    return str(Path(data).expanduser().resolve())


def _classes(raw: dict, bad) -> tuple[str, ...] | None:
    value = _typed(raw, "classes", list, bad)
    if value is not None and not all(isinstance(c, str) for c in value):
        raise bad("classes", f"{value!r} is not a list of names", "list the class folder names")
    return tuple(value) if value is not None else None


def check_unique(cards: list[ModelCard]) -> None:
    seen: dict[str, ModelCard] = {}
    for card in cards:
        if card.name in seen:
            raise card.error("name", f"'{card.name}' is also the name of card {seen[card.name].path}",
                             "give every card its own name")
        seen[card.name] = card


def write_onnx_card(card: ModelCard, onnx_path: Path) -> Path:
    """A card for `onnx_path`, the network of `card` exported alone: same input, statistics and data."""
    lines = [f'name = "{card.name}onnx"', f'source = "onnx:{onnx_path.name}"', f"input = {list(card.input)}",
             f"mean = {list(card.mean)}", f"std = {list(card.std)}", f"normalize = {str(card.normalize).lower()}"]
    if card.data:
        lines.append(f'data = "{card.data}"')
    path = onnx_path.with_suffix(".toml")
    path.write_text("\n".join(lines) + "\n")
    return path
