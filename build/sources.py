"""The source network a card names, loaded and checked before any expensive work: the build's teacher.

builtin: an architecture of build/models with a tritonzoo checkpoint. torch: any `nn.Module` factory importable
from the environment, with a plain state dict (or a tritonzoo checkpoint). onnx: an FP32 ONNX classifier. Torch
sources give every variant a PyTorch model to transform; an ONNX source gives the variants that need only a
graph or the teacher's outputs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from build.card import ModelCard
from build.data import Dataset
from build.data.dataset import sha256_file
from build.models import Classifier, checkpoint_meta, load_weights
from build.onnx_source import OnnxLogits, inspect, with_preprocessing
from build.shipped import model_sha256


@dataclass
class Teacher:
    """The source network: a torch Classifier, or an ONNX file already behind the zoo's preprocessing."""

    card: ModelCard
    sha256: str  # identity of the source's weights, which keys every cached or shipped run made from it
    module: Classifier | None = None
    onnx_path: Path | None = None  # onnx sources: the file with uint8 input and `logits` output
    test_accuracy: float | None = None  # what its checkpoint records, where it records it

    @property
    def is_torch(self) -> bool:
        return self.module is not None

    def reference(self, threads: int) -> OnnxLogits:
        """The user's own ONNX file, fed normalised floats as they trained it: what the published file must match."""
        pre = self.card.preprocess
        return OnnxLogits(Path(self.card.spec), threads, pre.mean, pre.std)

    def runner(self, threads: int) -> OnnxLogits:
        assert self.onnx_path is not None
        return OnnxLogits(self.onnx_path, threads)


def preflight(card: ModelCard) -> None:
    """What can be checked without the data, before any dataset is decoded: the source imports, builds and takes
    its weights, or the ONNX file has the interface the zoo serves."""
    if card.kind == "onnx":
        inspect(card, None)
    elif card.kind == "torch":
        _torch(card)
    else:
        checkpoint_meta(_builtin_weights(card))


def network(card: ModelCard) -> nn.Module:
    """The torch network of a builtin or torch card alone, without the zoo's preprocessing in front of it."""
    if card.kind == "torch":
        return _torch(card)[0].backbone
    if card.kind == "builtin":
        return load_weights(_builtin_weights(card), card.preprocess)[0].backbone
    raise card.error("source", f"{card.source} is already ONNX", "use the file itself")


def load_teacher(card: ModelCard, data: Dataset, workdir: Path) -> Teacher:
    """The card's source, checked against the card's input and the data's classes."""
    if card.classes is not None and list(card.classes) != data.classes:
        raise card.error("classes", f"{list(card.classes)}, but the data's class folders are {data.classes}",
                         "fix the list, or point data at the right dataset")
    if card.kind == "onnx":
        model = inspect(card, len(data.classes))
        path = with_preprocessing(card, model, workdir / f"{card.name}-source.onnx")
        teacher = Teacher(card, sha256_file(Path(card.spec)), onnx_path=path)
        _check_outputs(card, teacher.runner(1)(data.test.images[:2]), len(data.classes))
        return teacher
    module, sha, recorded = _builtin(card, data) if card.kind == "builtin" else (*_torch(card), None)
    with torch.inference_mode():
        try:
            out = module.eval()(module.example(2))
        except RuntimeError as exc:
            raise card.error("input", f"the network fails on a {list(card.input)} image "
                             f"({str(exc).splitlines()[0]})", "set input to what the network takes") from exc
    _check_outputs(card, out.numpy(), len(data.classes))
    return Teacher(card, sha, module=module, test_accuracy=recorded)


def _check_outputs(card: ModelCard, logits: np.ndarray, num_classes: int) -> None:
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise card.error("data", f"the model returns shape {list(logits.shape)} for 2 images, the data has "
                         f"{num_classes} classes", "give the dataset the model was trained on, or fix the model")


def _builtin_weights(card: ModelCard) -> Path:
    if card.weights is None:
        raise card.error("weights", "missing for a builtin source", "train them with `invoke train` and name the file")
    return card.weights


def _builtin(card: ModelCard, data: Dataset) -> tuple[Classifier, str, float | None]:
    """The network, its file's hash, and the test accuracy its checkpoint records."""
    weights = _builtin_weights(card)
    meta = checkpoint_meta(weights)  # the classes first: weights for others may not even load
    if meta.get("classes") and meta["classes"] != data.classes:
        raise card.error("data", f"{weights.name} was trained on classes {meta['classes']}, the data has "
                         f"{data.classes}", "point data at the dataset the weights were trained on")
    module, meta = load_weights(weights, card.preprocess)
    if meta["arch"] != card.spec:
        raise card.error("weights", f"{weights.name} holds a '{meta['arch']}', the card says '{card.spec}'",
                         f"use source = \"builtin:{meta['arch']}\" or the right weights")
    return module, sha256_file(weights), meta.get("test_accuracy")


def _torch(card: ModelCard) -> tuple[Classifier, str]:
    module_name, factory_name = card.spec.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise card.error("source", f"cannot import {factory_name} from {module_name} ({exc})",
                         "install the package or put it on PYTHONPATH") from exc
    try:
        network = factory(**card.args)
    except Exception as exc:  # the user's code: any failure is theirs to see, in one line
        raise card.error("args", f"{module_name}.{factory_name}(**{card.args}) failed ({exc})",
                         "fix the factory's arguments") from exc
    if not isinstance(network, nn.Module):
        raise card.error("source", f"{factory_name} returned {type(network).__name__}, not a torch.nn.Module",
                         "name a function that builds the network")
    if card.weights is not None:
        _load_state(card, network)
    classifier = Classifier(network, card.preprocess)
    return classifier.eval(), sha256_file(card.weights) if card.weights else model_sha256(classifier)


def _load_state(card: ModelCard, network: nn.Module) -> None:
    assert card.weights is not None
    try:
        blob = torch.load(card.weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise card.error("weights", f"cannot read {card.weights} ({exc})",
                         "save it with torch.save(model.state_dict())") from exc
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise card.error("weights", f"{card.weights.name} is not a state dict", "save model.state_dict()")
    state = {k.removeprefix("backbone."): v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise card.error("weights", f"{card.weights.name} does not fit the network "
                         f"({str(exc).strip().splitlines()[0]})", "give the weights of this very architecture") from exc
