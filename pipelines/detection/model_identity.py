"""What a model is, whatever path it is read from: its size and a SHA-256 of its content.

The same weights copied to another folder, renamed, or read on another machine (a Ray node resuming a camera)
have the same fingerprint; other weights under the same name do not. An exported model folder (OpenVINO's
``*_openvino_model``) is fingerprinted over its files (each one's name inside the folder and content), an
OpenVINO ``.xml`` with the ``.bin`` of its weights beside it, and an ``.onnx`` whose weights are kept in
external data files (models over 2 GB, or saved so) with each of those files its graph names.

A file is hashed once per process (``file_sha256`` takes about a second per 500 MB): the digest is kept under
the file's real path, size, modification time and inode, so a file replaced in place is hashed again.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

if TYPE_CHECKING:
    import onnx

BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the whole file at ``path``, read now."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _hashed(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return file_sha256(Path(path))


def content_sha256(path: Path) -> str:
    """``file_sha256`` of ``path``, computed once while the file keeps its size, modification time and inode."""
    stat = path.stat()
    return _hashed(os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _files(path: Path) -> list[tuple[str, Path]]:
    """The files that make up the model at ``path``, each with the name it is hashed under."""
    if path.is_dir():
        return [(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()]
    weights = path.with_suffix(".bin")
    if path.suffix.lower() == ".xml" and weights.is_file():   # an OpenVINO model's graph and its weights
        return [(".xml", path), (".bin", weights)]
    if path.suffix.lower() == ".onnx":
        external = onnx_external_data(path)
        if external:
            return [("", path), *((name, path.parent / name) for name in external)]
    return [("", path)]


def onnx_external_data(path: Path) -> list[str]:
    """The external data files (paths relative to the model's folder, sorted) that the ONNX graph at ``path``
    keeps tensors in; [] when it keeps them all inside or cannot be parsed as ONNX (the file is then hashed
    alone, and the runtime says what is wrong with it)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - anything onnx raises on a file that is no ONNX model (DecodeError etc.)
        return []
    return sorted({entry.value for tensor in _tensors(model.graph)
                   if tensor.data_location == onnx.TensorProto.EXTERNAL
                   for entry in tensor.external_data if entry.key == "location"})


def _tensors(graph: "onnx.GraphProto") -> Iterator["onnx.TensorProto"]:
    """Every tensor of ``graph``: its initializers and the tensors of node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)


def model_fingerprint(model: Path) -> Optional[dict[str, object]]:
    """``{"size": bytes, "sha256": hex}`` of the local model file or exported model folder ``model``; None when
    it is neither (a name Ultralytics resolves itself, such as ``yolo11n.yaml``) or cannot be read."""
    try:
        if not model.exists():
            return None
        files = _files(model)
        if len(files) == 1 and files[0][0] == "":   # one file: its own SHA-256, as ``sha256sum`` prints it
            return {"size": model.stat().st_size, "sha256": content_sha256(model)}
        digest = hashlib.sha256()
        for name, path in files:
            digest.update(f"{name}\0{content_sha256(path)}\n".encode())
        return {"size": sum(path.stat().st_size for _, path in files), "sha256": digest.hexdigest()}
    except OSError:
        return None
