"""Named A/B experiments: weighted arms, sticky assignment, optional shadow model; persisted to disk."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from serving.gateway.errors import BadRequest, InvalidConfig, NotFound


@dataclass(frozen=True)
class Shadow:
    model: str
    fraction: float = 1.0


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: dict[str, float]
    shadow: Shadow | None = None
    canary: dict | None = field(default=None, compare=False)

    def assign(self, key: str | None, pinned: str | None = None, rng: random.Random | None = None) -> str:
        """Pinned arm if asked for; else by hash of the key (sticky); else at random, by weight."""
        if pinned:
            if pinned not in self.arms:
                raise BadRequest(f"X-Variant '{pinned}' is not an arm of experiment '{self.name}': {sorted(self.arms)}")
            return pinned
        point = unit_hash(f"{self.name}:{key}") if key else (rng or random).random()
        total = sum(self.arms.values())
        cumulative = 0.0
        for model, weight in self.arms.items():
            cumulative += weight / total
            if point < cumulative:
                return model
        return next(m for m, w in reversed(self.arms.items()) if w > 0)

    @property
    def ramping(self) -> bool:
        return bool(self.canary) and self.canary.get("state") == "ramping"

    def with_weights(self, arms: dict[str, float], canary: dict | None) -> Experiment:
        return replace(self, arms={m: w for m, w in arms.items() if w > 0}, canary=canary)

    def to_json(self) -> dict:
        return {"name": self.name, "arms": self.arms, "shadow": asdict(self.shadow) if self.shadow else None,
                "canary": self.canary}


def unit_hash(text: str) -> float:
    """A stable point in [0, 1): the same key lands in the same arm across requests and restarts."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def parse_experiment(name: str, body: object, known_models: Iterable[str]) -> Experiment:
    """Validate an admin request body: {"arms": {model: weight}, "shadow": {"model": m, "fraction": f}}."""
    known = set(known_models)
    if not isinstance(body, dict) or not isinstance(body.get("arms"), dict) or not body["arms"]:
        raise InvalidConfig("an experiment needs 'arms': an object mapping model names to weights")
    arms = {}
    for model, weight in body["arms"].items():
        if model not in known:
            raise InvalidConfig(f"arm '{model}' is not a published model: {sorted(known)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise InvalidConfig(f"weight of arm '{model}' must be a finite number >= 0, got {weight!r}")
        arms[model] = float(weight)
    if sum(arms.values()) <= 0:
        raise InvalidConfig("arm weights must not all be zero")
    return Experiment(name, {m: w for m, w in arms.items() if w > 0}, _parse_shadow(body.get("shadow"), known))


def _parse_shadow(body: object, known: set[str]) -> Shadow | None:
    if body is None:
        return None
    if not isinstance(body, dict) or body.get("model") not in known:
        raise InvalidConfig(f"'shadow' needs a published 'model' ({sorted(known)}) and an optional 'fraction'")
    fraction = body.get("fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise InvalidConfig(f"shadow fraction must be between 0 and 1, got {fraction!r}")
    return Shadow(body["model"], float(fraction))


class ExperimentStore:
    """Experiments by name, written through to a JSON file so that a restart keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.experiments: dict[str, Experiment] = {}
        if self.path.exists():
            for raw in json.loads(self.path.read_text()).values():
                shadow = Shadow(**raw["shadow"]) if raw.get("shadow") else None
                self.experiments[raw["name"]] = Experiment(raw["name"], raw["arms"], shadow, raw.get("canary"))

    def get(self, name: str) -> Experiment:
        try:
            return self.experiments[name]
        except KeyError:
            raise NotFound(f"unknown experiment '{name}'; experiments: {sorted(self.experiments)}") from None

    def put(self, experiment: Experiment) -> None:
        self.experiments[experiment.name] = experiment
        self._save()

    def delete(self, name: str) -> None:
        self.get(name)
        del self.experiments[name]
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({n: e.to_json() for n, e in self.experiments.items()}, indent=2))
        os.replace(tmp, self.path)
