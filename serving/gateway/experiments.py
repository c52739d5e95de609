"""Named A/B experiments: weighted arms, sticky assignment, optional shadow model and canary schedule.

Experiments are declared in a JSON file: every gateway replica reads the same file (in Kubernetes, a ConfigMap),
watches it and reloads it when it changes, so that replicas run the same experiments. A single gateway's admin API
writes the same file. Assignment is a hash of the key, so replicas that read the same file give a key the same arm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

from serving.gateway.errors import BadRequest, InvalidConfig, NotFound, ReadOnly

log = logging.getLogger("tritonzoo.gateway.experiments")


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
        """A canary is in progress: started or scheduled, neither promoted nor rolled back."""
        return self.canary is not None and self.canary.get("state") in ("ramping", "pending")

    def with_weights(self, arms: dict[str, float], canary: dict | None) -> Experiment:
        return replace(self, arms={m: w for m, w in arms.items() if w > 0}, canary=canary)

    def models(self) -> set[str]:
        """Every model the experiment may send traffic to: its arms, its shadow and its canary's candidate."""
        candidate = {self.canary["model"]} if self.canary and isinstance(self.canary.get("model"), str) else set()
        return set(self.arms) | ({self.shadow.model} if self.shadow else set()) | candidate

    def to_json(self) -> dict:
        return {"name": self.name, "arms": self.arms, "shadow": asdict(self.shadow) if self.shadow else None,
                "canary": self.canary}


def unit_hash(text: str) -> float:
    """A stable point in [0, 1): the same key lands in the same arm across requests, restarts and replicas."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def parse_experiment(name: str, body: object, known_models: Iterable[str] | None) -> Experiment:
    """Validate an admin request body: {"arms": {model: weight}, "shadow": {"model": m, "fraction": f}}; `known_models`
    None accepts any model name (a file checked for its structure only)."""
    known = _Known(known_models)
    if not isinstance(body, dict) or not isinstance(body.get("arms"), dict) or not body["arms"]:
        raise InvalidConfig("an experiment needs 'arms': an object mapping model names to weights")
    arms = {}
    for model, weight in body["arms"].items():
        if model not in known:
            raise InvalidConfig(f"arm '{model}' is not a published model: {known}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise InvalidConfig(f"weight of arm '{model}' must be a finite number >= 0, got {weight!r}")
        arms[model] = float(weight)
    if sum(arms.values()) <= 0:
        raise InvalidConfig("arm weights must not all be zero")
    return Experiment(name, {m: w for m, w in arms.items() if w > 0}, _parse_shadow(body.get("shadow"), known))


class _Known:
    """The published models; None: any name (a store without a catalogue checks structure only)."""

    def __init__(self, models: Iterable[str] | None) -> None:
        self.models = None if models is None else set(models)

    def __contains__(self, name: object) -> bool:
        return self.models is None or name in self.models

    def __repr__(self) -> str:
        return repr(sorted(self.models or ()))


def _parse_shadow(body: object, known: _Known) -> Shadow | None:
    if body is None:
        return None
    if not isinstance(body, dict) or body.get("model") not in known:
        raise InvalidConfig(f"'shadow' needs a published 'model' ({known}) and an optional 'fraction'")
    fraction = body.get("fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise InvalidConfig(f"shadow fraction must be between 0 and 1, got {fraction!r}")
    return Shadow(body["model"], float(fraction))


@dataclass(frozen=True)
class CanaryPlan:
    """A canary as the experiments file declares it: the candidate, its steps, their interval, the error rate that
    rolls it back, and its start (canary.CanarySchedule runs it)."""

    model: str
    steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    interval_s: float = 30.0
    max_error_rate: float = 0.01
    start: float | None = None  # Unix seconds; None: when the admin API takes it

    @classmethod
    def parse(cls, body: object) -> CanaryPlan:
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise InvalidConfig("a canary needs 'model', and optionally 'steps', 'interval_s', 'max_error_rate', "
                                "'start'")
        try:
            steps = tuple(_number(s) for s in body.get("steps", cls.steps))
            interval = _number(body.get("interval_s", cls.interval_s))
            max_error = _number(body.get("max_error_rate", cls.max_error_rate))
            start = _time(body["start"]) if body.get("start") is not None else None
        except (TypeError, ValueError) as exc:
            raise InvalidConfig(f"canary steps, interval_s and max_error_rate must be finite numbers, start a Unix "
                                f"time or an ISO 8601 time with its zone ({exc})") from exc
        if not steps or any(not 0 < s <= 1 for s in steps) or list(steps) != sorted(steps) or steps[-1] != 1.0:
            raise InvalidConfig(f"canary steps must rise within (0, 1] and end at 1.0, got {list(steps)}")
        if interval < 0 or not 0 <= max_error <= 1:
            raise InvalidConfig("interval_s must be >= 0 and max_error_rate within [0, 1]")
        return cls(body["model"], steps, interval, max_error, start)

    def record(self, start: float | None = None) -> dict:
        """The canary as the experiments file declares it."""
        return {"model": self.model, "start": self.start if start is None else start, "steps": list(self.steps),
                "interval_s": self.interval_s, "max_error_rate": self.max_error_rate}


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _time(value: object) -> float:
    """Unix seconds, or an ISO 8601 time that names its zone ('2026-12-05T10:00:00Z'): replicas in other zones
    must read the same instant."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"start {value!r} names no time zone")
        return parsed.timestamp()
    return _number(value)


def parse_declared(name: str, body: object, known_models: Iterable[str] | None) -> Experiment:
    """One experiment of the file: arms and shadow as the admin API takes them, and an optional canary.

    A canary with a `start` is a schedule (see canary.CanarySchedule), checked here; one without is the record of a
    finished rollout, kept as written. A canary the previous gateway left mid-ramp (state 'ramping', no schedule)
    lost its controller: it is read as interrupted, at its baseline, as that gateway would have done.
    """
    known = _Known(known_models)
    if isinstance(body, dict) and body.get("name", name) != name:
        raise InvalidConfig(f"experiment '{name}' names itself '{body['name']}'")
    canary = body.get("canary") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(canary, dict) and canary.get("state") == "ramping" \
            and "start" not in canary and isinstance(canary.get("baseline"), dict):
        body = {**body, "arms": canary["baseline"]}
        canary = {**canary, "state": "interrupted", "weight": 0.0, "reason": "the gateway restarted during the ramp"}
    experiment = parse_experiment(name, body, known.models)
    if canary is None:
        return experiment
    if not isinstance(canary, dict):
        raise InvalidConfig(f"experiment '{name}': 'canary' must be an object")
    if "start" in canary:
        plan = CanaryPlan.parse(canary)
        if plan.model not in known:
            raise InvalidConfig(f"experiment '{name}': canary model '{plan.model}' is not a published model")
        canary = {**plan.record(), **{k: canary[k] for k in ("state", "reason") if k in canary}}
    return replace(experiment, canary=canary)


def parse_file(text: str, known_models: Iterable[str] | None) -> dict[str, Experiment]:
    """Every experiment of a file's text, or InvalidConfig naming the first problem: a file is taken whole or not."""
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidConfig("expected an object mapping experiment names to experiments")
    known = None if known_models is None else set(known_models)
    return {name: parse_declared(name, body, known) for name, body in raw.items()}


class ExperimentStore:
    """Experiments by name, as declared in a JSON file: read at start, reloaded when the file changes, and written
    through (atomically, by rename) by the admin API unless the file is read-only to this gateway."""

    def __init__(self, path: Path, known_models: Callable[[], Iterable[str]] | None = None,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.known_models = known_models
        self.read_only = read_only
        self.experiments: dict[str, Experiment] = {}
        self.digest = ""        # sha256 of the file's bytes as last loaded or written ('' : no file)
        self.loaded_at = 0.0
        self.reload_errors = 0
        self._load(self._read(), strict=True)


    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _load(self, data: bytes | None, strict: bool) -> bool:
        digest = hashlib.sha256(data).hexdigest() if data is not None else ""
        if digest == self.digest and self.loaded_at:
            return False
        try:
            text = data.decode() if data is not None else ""
            experiments = parse_file(text, self.known_models() if self.known_models else None)
        except (InvalidConfig, UnicodeDecodeError) as exc:
            if strict:
                raise InvalidConfig(f"{self.path}: {getattr(exc, 'message', exc)}") from exc
            self.reload_errors += 1
            log.error("%s: kept the experiments loaded before: %s", self.path, getattr(exc, "message", exc))
            self.digest = digest  # do not retry the same bad content on every poll
            return False
        self.experiments, self.digest, self.loaded_at = experiments, digest, time.time()
        return True

    def reload_if_changed(self) -> bool:
        """Read the file again; True when its content changed and was taken (a bad file is logged and kept out)."""
        return self._load(self._read(), strict=False)

    def get(self, name: str) -> Experiment:
        try:
            return self.experiments[name]
        except KeyError:
            raise NotFound(f"unknown experiment '{name}'; experiments: {sorted(self.experiments)}") from None

    def require_writable(self) -> None:
        if self.read_only:
            raise ReadOnly(f"experiments are declared in {self.path}, which this gateway only reads: change the file "
                           "(in Kubernetes, the gateway-experiments ConfigMap) and every replica reloads it")

    def put(self, experiment: Experiment) -> None:
        self._save({**self.experiments, experiment.name: experiment})

    def delete(self, name: str) -> None:
        self.get(name)
        self._save({n: e for n, e in self.experiments.items() if n != name})

    def _save(self, experiments: dict[str, Experiment]) -> None:
        self.require_writable()
        data = json.dumps({n: e.to_json() for n, e in experiments.items()}, indent=2).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ReadOnly(f"cannot write {self.path} ({exc.strerror}): change the file itself") from exc
        self.experiments, self.digest, self.loaded_at = experiments, hashlib.sha256(data).hexdigest(), time.time()

