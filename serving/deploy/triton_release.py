"""Which NVIDIA Triton container serves the repository: the release the manifest says its models were built for
(serving/release.py names the releases and their runtimes)."""

from __future__ import annotations

from serving.deploy.repository import DeployError, Repository
from serving.release import Release, ReleaseError, release_named

# Triton picks a backend from a config's platform when it names no backend.
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
                     "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow"}


def backend_of(backend_or_platform: str) -> str:
    return PLATFORM_BACKENDS.get(backend_or_platform, backend_or_platform)


def release_for(repo: Repository, requested: str = "") -> Release:
    """The release recorded in the manifest (or `requested`, which must agree with it); DeployError for a release
    this code does not know, a backend its container lacks, or a TensorRT plan built by another TensorRT."""
    name = requested or repo.release
    if not name:
        raise DeployError(f"{repo.path}/manifest.json records no Triton release (published before releases were "
                          "recorded): rebuild it, or give --release")
    if requested and repo.release and requested != repo.release:
        raise DeployError(f"--release {requested}, but {repo.path} was built for Triton {repo.release}: rebuild it "
                          f"for {requested} ($TRITONZOO_TRITON_RELEASE={requested}), or deploy {repo.release}")
    try:
        release = release_named(name)
    except ReleaseError as exc:
        raise DeployError(str(exc)) from None
    missing = {m: s.backend for m, s in repo.models.items() if backend_of(s.backend) not in release.backends}
    if missing:
        raise DeployError(f"Triton {release.server} ({release.image}) has no backend for {missing}; "
                          f"it ships {sorted(release.backends)}")
    _check_plans(repo, release)
    return release


def _check_plans(repo: Repository, release: Release) -> None:
    """A plan loads only in the TensorRT version that built it: one built by another fails in the container."""
    plans = {m: s.tensorrt for m, s in repo.models.items() if backend_of(s.backend) == "tensorrt"}
    foreign = {m: v or "unknown" for m, v in plans.items() if not (v and release.tensorrt_matches(v))}
    if foreign:
        model, version = sorted(foreign.items())[0]
        raise DeployError(f"{model} is a TensorRT {version} plan and Triton {release.name} runs TensorRT "
                          f"{release.tensorrt}: rebuild the plans with {release.tensorrt_wheel}=={release.tensorrt}"
                          + (f" ({len(foreign) - 1} more such plans)" if len(foreign) > 1 else ""))
