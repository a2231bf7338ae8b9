"""What ``runtime.sandbox.image`` names, and the root filesystem the daemonless backend runs on.

- a directory: an image's root filesystem, used as it is (read-only);
- a ``.tar`` / ``.tar.gz`` / ``.tgz`` file: either a flat root filesystem (``docker export``,
  ``podman export``) or a saved image (``docker save``, ``podman save``: ``manifest.json`` and layer
  tarballs, applied in order with their whiteouts) — unpacked once into ``.lab/images/<digest>/``;
- anything else: an image reference for an OCI engine (podman or docker) on this machine.

Relative paths resolve against the project root.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opslab.errors import InvalidInput

TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz")
SandboxKind = Literal["local", "rootfs", "oci"]


@dataclass(frozen=True)
class ImageRef:
    kind: SandboxKind
    image: str | None
    path: Path | None = None  # the directory or tarball, for ``rootfs``


def classify(image: str | None, project_root: Path) -> ImageRef:
    if not image:
        return ImageRef("local", None)
    candidate = (project_root / image).resolve()
    if candidate.is_dir() or (candidate.is_file() and image.endswith(TARBALL_SUFFIXES)):
        return ImageRef("rootfs", image, candidate)
    if image.endswith(TARBALL_SUFFIXES) or image.startswith(("/", "./", "../")):
        raise InvalidInput.for_field("runtime.sandbox.image", f"{candidate}: no such directory or tarball")
    return ImageRef("oci", image)


def rootfs_of(ref: ImageRef, cache_dir: Path) -> Path:
    """The root filesystem directory of a ``rootfs`` image (unpacking a tarball once, atomically)."""
    assert ref.path is not None
    if ref.path.is_dir():
        return ref.path
    digest = _sha256(ref.path)
    target = cache_dir / digest[:32]
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir))
    try:
        _unpack(ref.path, staging)
        os.replace(staging, target)
    except FileExistsError:  # another runner unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    except (OSError, tarfile.TarError, ValueError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InvalidInput.for_field(
            "runtime.sandbox.image", f"{ref.path.name}: not an image tarball: {exc}"
        ) from None
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Files, directories and links only (no device nodes), never outside the target."""
    if member.ischr() or member.isblk() or member.isfifo():
        return None
    return tarfile.tar_filter(member, dest)


def _unpack(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        if "manifest.json" not in names:
            tar.extractall(dest, filter=_member_filter)
            return
        listing = tar.extractfile("manifest.json")
        manifest = json.load(listing) if listing is not None else None
        if not isinstance(manifest, list) or not manifest or "Layers" not in manifest[0]:
            raise ValueError("manifest.json does not list Layers")
        for layer in manifest[0]["Layers"]:
            member = tar.extractfile(layer)
            if member is None:
                raise ValueError(f"layer {layer} is missing")
            with tarfile.open(fileobj=member) as layer_tar:
                _apply_layer(layer_tar, dest)


def _apply_layer(layer: tarfile.TarFile, dest: Path) -> None:
    """One image layer over ``dest``: whiteouts delete what lower layers put there."""
    keep: list[tarfile.TarInfo] = []
    for member in layer.getmembers():
        parent, _, base = member.name.rstrip("/").rpartition("/")
        if base == ".wh..wh..opq":
            opaque = dest / parent
            if opaque.is_dir():
                for child in opaque.iterdir():
                    _remove(child, dest)
        elif base.startswith(".wh."):
            _remove(dest / parent / base[4:], dest)
        else:
            keep.append(member)
    layer.extractall(dest, members=keep, filter=_member_filter)


def _remove(path: Path, dest: Path) -> None:
    if not os.path.realpath(path.parent).startswith(os.path.realpath(dest) + os.sep) and path.parent != dest:
        return  # a whiteout naming something outside the image: ignored
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
