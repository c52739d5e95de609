"""Atomic publishing: the one writer of a model repository, for the build and for config search alike.

Every model folder is built off to the side, then swapped in with one rename, and the manifest is rewritten
in the same commit. Triton never sees a half-written model, and a publication that fails or is interrupted
before `commit` leaves the repository byte-for-byte as it was. Staging lives beside the repository (same
file system, so renames are atomic) rather than inside it, where Triton would try to load it. One lock
beside the repository keeps two writers apart. Needs no torch: serving/ and loadtest/ use it too.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from serving.manifest import CardRecord, Manifest, ManifestError, ModelEntry, read_manifest, write_manifest
from serving.release import Release, target_release

CONFIG = "config.pbtxt"
# The one version folder a builder writes in a model folder it makes; the publication renames it to the version it
# chooses (one past the published one), so no builder reads the live manifest to number versions.
DRAFT_VERSION = 1

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


class PublicationError(Exception):
    """The repository cannot be written now (another writer holds it, or a publication is incomplete)."""


def exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE): no instant without a model."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def replace_dir(staged: Path, target: Path) -> None:
    """Move `staged` to `target`; whatever was at `target` ends up at `staged`."""
    if not target.exists():
        staged.rename(target)
        return
    try:
        exchange(staged, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        # No renameat2 here: two renames, with a moment in which the model is absent.
        backup = staged.with_name(staged.name + ".old")
        target.rename(backup)
        try:
            staged.rename(target)
        except OSError:
            backup.rename(target)
            raise
        backup.rename(staged)


class Publication:
    """One writer's set of models, committed on a clean exit: models built elsewhere are handed over with `add`
    (the build's way: it numbers their versions), or written in place with `stage`/`restage` and `record`
    (config search and the soak's faults, which change published models)."""

    def __init__(self, repo: Path, release: Release | None = None) -> None:
        self.repo = Path(repo).resolve()
        self.release = release or target_release()  # what newly built models are built for
        self.entries: dict[str, dict] = {}
        self.cards: dict[str, CardRecord] = {}
        self._staged: dict[str, Path] = {}
        self._built: set[str] = set()  # staged fresh (not a published model's folder restaged)

    def __enter__(self) -> Publication:
        self.repo.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.repo.parent / f".{self.repo.name}.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            prefix = f".{self.repo.name}.staging-"
            for stale in self.repo.parent.glob(prefix + "*"):  # left by a build that was killed outright
                shutil.rmtree(stale, ignore_errors=True)
            self.area = Path(tempfile.mkdtemp(dir=self.repo.parent, prefix=prefix))
        except BlockingIOError:
            self._lock.close()
            raise PublicationError(f"another build is publishing into {self.repo}; wait for it to finish") from None
        except BaseException:
            self._lock.close()
            raise
        return self

    def add(self, entry: ModelEntry, folder: Path) -> ModelEntry:
        """Take a model built elsewhere (`folder`: config.pbtxt, labels and the version folder `DRAFT_VERSION`) into
        this publication under the next version of its name; returns its entry with that version. The folder is
        moved: the builder's copy is gone."""
        previous = read_manifest(self.repo).models.get(entry.model)
        version = previous.version + 1 if previous else 1
        staged = self.area / entry.model
        shutil.move(folder, staged)
        (staged / str(DRAFT_VERSION)).rename(staged / str(version))
        self._staged[entry.model] = staged
        self._built.add(entry.model)
        numbered = replace(entry, version=version)
        self.entries[entry.model] = numbered.to_dict()
        return numbered

    def stage(self, model: str) -> Path:
        folder = self.area / model
        folder.mkdir()
        self._staged[model] = folder
        self._built.add(model)
        return folder

    def staged(self, model: str) -> Path:
        return self._staged[model]

    def restage(self, model: str) -> Path:
        """Stage a copy of a published model's folder, to change it in place (same version). Files are hard
        links where the file system allows: the copy costs no space, and must never be written through."""
        folder = self.area / model
        shutil.copytree(self.repo / model, folder, copy_function=_link_or_copy)
        self._staged[model] = folder
        return folder

    def reconfigure(self, model: str, config: pb.ModelConfig) -> None:
        """Give a published model a new config.pbtxt, and its manifest entry the fields that follow from it."""
        entry = read_manifest(self.repo).models.get(model)
        if entry is None:
            raise PublicationError(f"{model} is not published in {self.repo}; nothing to reconfigure")
        path = self.restage(model) / CONFIG
        mode = path.stat().st_mode & 0o777
        path.unlink()  # a hard link to the served file: replace it, never write through it
        path.write_text(text_format.MessageToString(config))
        path.chmod(mode)
        self.record(model, replace(entry, max_batch_size=config.max_batch_size).to_dict())

    def discard(self, model: str) -> None:
        """Drop a staged model (a rejected variant); the rest of the build still publishes."""
        if model in self._staged:
            shutil.rmtree(self._staged.pop(model))
        self.entries.pop(model, None)
        self._built.discard(model)

    def record(self, model: str, entry: dict) -> None:
        if model not in self._staged:
            raise ValueError(f"record() for {model}, which was never staged")
        self.entries[model] = entry

    def describe(self, family: str, card: CardRecord) -> None:
        """The card a family of models was built from, recorded in the manifest beside them."""
        self.cards[family] = card

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            shutil.rmtree(self.area, ignore_errors=True)
            self._lock.close()

    def commit(self) -> None:
        unrecorded = set(self._staged) - set(self.entries)
        if unrecorded:
            raise PublicationError(f"models staged without metadata: {sorted(unrecorded)}; nothing was published")
        manifest = self._manifest()
        swapped: list[tuple[Path, Path]] = []
        try:
            for model, folder in self._staged.items():
                replace_dir(folder, self.repo / model)
                swapped.append((folder, self.repo / model))
            write_manifest(self.repo, manifest)
        except BaseException:
            # Put back what was swapped in, newest first: the repository is as it was before the build.
            for folder, target in reversed(swapped):
                if folder.exists():
                    replace_dir(folder, target)
                else:
                    shutil.rmtree(target)  # the model was new: there is nothing to swap back
            raise

    def _manifest(self) -> Manifest:
        """The repository's manifest with this build's models and cards: validated before anything is swapped in."""
        try:
            manifest = read_manifest(self.repo)
            manifest.models.update({n: ModelEntry.from_dict(e, f"models.{n}") for n, e in self.entries.items()})
        except ManifestError as exc:
            raise PublicationError(f"cannot publish into {self.repo}: {exc}") from exc
        manifest.cards.update(self.cards)
        self._record_release(manifest)
        return manifest

    def _record_release(self, manifest: Manifest) -> None:
        """New models are built for this publication's release; one repository holds one release's models, since
        one container serves it all (a config change alone keeps the recorded release)."""
        if not self._built:
            return
        recorded = manifest.release_name
        others = set(manifest.models) - self._built
        if recorded and recorded != self.release.name and others:
            raise PublicationError(
                f"{self.repo} holds models built for Triton {recorded} ({len(others)} not rebuilt now), and this "
                f"build targets Triton {self.release.name}: publish into another repository, rebuild every model "
                f"for {self.release.name}, or build with $TRITONZOO_TRITON_RELEASE={recorded}")
        manifest.release = self.release.to_dict()


def republish_config(repo: Path, model: str, config: pb.ModelConfig) -> None:
    """Replace one published model's config in one commit: its folder swapped in atomically with the new
    config.pbtxt, and the manifest's max_batch_size updated with it, under the publication's lock."""
    with Publication(repo) as publication:
        publication.reconfigure(model, config)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)
