"""Reading generated manifests back as a cluster would: YAML documents, overlays applied, objects found by kind."""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from pathlib import Path

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(path: Path) -> list[dict]:
    return copy.deepcopy(_documents(path))  # callers may change what they get


@cache
def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=LOADER) if d]


def base_objects(out: Path) -> list[dict]:
    """Every object the base's kustomization lists, in its order."""
    kustomization = yaml.safe_load((out / "base" / "kustomization.yaml").read_text())
    return [obj for name in kustomization["resources"] for obj in documents(out / "base" / name)]


def apply_json_patch(document: dict, operations: list[dict]) -> dict:
    """RFC 6902 add, replace and remove, the operations the overlays use (what kustomize applies)."""
    document = copy.deepcopy(document)
    for op in operations:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        node = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            if last == "-":
                node.append(op["value"])
            elif op["op"] == "add":
                node.insert(int(last), op["value"])
            else:
                node[int(last)] = op["value"]
        else:
            if op["op"] == "replace":
                assert last in node, f"replace of missing {op['path']}"
            node[last] = op["value"]
    return document


def overlay_objects(out: Path, overlay: str) -> list[dict]:
    """The base with the overlay's patches applied to their targets, as `kustomize build` would give."""
    folder = out / "overlays" / overlay
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../../base"]
    objects = base_objects(out)
    for patch in kustomization["patches"]:
        target, operations = patch["target"], yaml.safe_load((folder / patch["path"]).read_text())
        hits = [i for i, o in enumerate(objects) if o["kind"] == target["kind"]
                and o["metadata"]["name"] == target["name"] and o["apiVersion"].startswith(target["group"])]
        assert len(hits) == 1, f"patch {patch} targets {len(hits)} objects"
        objects[hits[0]] = apply_json_patch(objects[hits[0]], operations)
    return objects


def kustomize_build(folder: Path) -> list[dict] | None:
    """`kubectl kustomize` when a kubectl with kustomize v4 or later is on PATH, else None."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True).stdout
    if "Kustomize Version: v" not in version or int(version.split("Kustomize Version: v")[1][0]) < 4:
        return None
    proc = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str) -> dict:
    (obj,) = find(objects, kind, name)
    return obj


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]
