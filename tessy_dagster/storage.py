"""The artifact store: one root folder, `ROOT/<asset>/<partition>/`, written atomically.

Each artifact folder holds its files and a `manifest.json` (content digest, input digests, settings,
code version, metrics). A folder is filled under a temporary name and renamed into place, so a crash
never leaves a half-written artifact and the previous version stays intact until the new one is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

UNPARTITIONED = "all"
MANIFEST = "manifest.json"


def tessy_home() -> Path:
    return Path(os.environ.get("TESSY_HOME", ".tessy")).resolve()


def artifact_dir(home: str | Path, asset: str, partition: str | None = None) -> Path:
    return Path(home) / asset / (partition or UNPARTITIONED)


def digest_dir(path: str | Path) -> str:
    """sha256 over the relative names and bytes of every file but the manifest, in a stable order."""
    return _digest_dir(path, files=None)


def digest_dir_and_files(path: str | Path) -> tuple[str, dict[str, str]]:
    """`digest_dir` and each file's own sha256 by relative name, in one read of every file: the per-file
    digests let an audit name the file that changed, where the folder digest only says that one did."""
    files: dict[str, str] = {}
    return _digest_dir(path, files=files), files


def _digest_dir(path: str | Path, files: dict[str, str] | None) -> str:
    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        name = str(file.relative_to(root))
        h.update(name.encode())
        own = hashlib.sha256() if files is not None else None
        _hash_file(h, file, also=own)
        if own is not None:
            files[name] = own.hexdigest()
    return h.hexdigest()


def _hash_file(h, file: Path, also=None) -> None:
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            if also is not None:
                also.update(block)


def digest_path(path: str | Path) -> str:
    """The content digest of a source read where it is: a file's bytes, or a folder's as `digest_dir`."""
    path = Path(path)
    if path.is_dir():
        return digest_dir(path)
    h = hashlib.sha256()
    _hash_file(h, path)
    return h.hexdigest()


def digest_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` in two renames."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(target: str | Path) -> list[Path]:
    """Delete the temporary and superseded folders of `target` that a killed writer left behind (a SIGKILL or
    a lost pod skips atomic_dir's own cleanup). Safe because one writer of an artifact runs at a time: each
    asset has a Dagster pool, limited to 1 by the instance (instance/dagster.yaml). Resume folders
    (`.NAME.work-*`) are kept: they are what a rerun resumes from."""
    target = Path(target)
    leftovers = sorted(p for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*")
                       for p in target.parent.glob(pattern) if p.is_dir())
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    return leftovers


def work_dir(out_dir: str | Path, inputs: dict, settings: dict, code_version: str) -> Path:
    """A folder beside the artifact for a step's resumable progress (finished shards), named by what the
    artifact is made from: a rerun with the same inputs and settings finds it, any change starts afresh."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.work-{fingerprint(inputs, settings, code_version)[:16]}"


def write_manifest(folder: str | Path, *, inputs: dict, settings: dict, metrics: dict, code_version: str,
                   extra: dict | None = None) -> dict:
    """`extra` may name a `location` (an input read where it is, e.g. a team's model folder: downstream reads
    that instead of this folder) and a `data_version` (the source's content digest, instead of this folder's).
    `files` holds each file's sha256 by relative name, so an audit can name what changed after this."""
    digest, files = digest_dir_and_files(folder)
    manifest = {
        "digest": digest,
        "files": files,
        "inputs": inputs,
        "settings": settings,
        "code_version": code_version,
        "fingerprint": fingerprint(inputs, settings, code_version),
        "metrics": metrics,
        **(extra or {}),
    }
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return manifest


def fingerprint(inputs: dict, settings: dict, code_version: str) -> str:
    """What an artifact was made from; equal fingerprints mean a rerun may reuse the artifact."""
    return digest_json({"inputs": inputs, "settings": settings, "code_version": code_version})


def data_version(manifest: dict) -> str:
    """What downstream depends on: the source's digest for an input read where it is, else the content digest."""
    return manifest.get("data_version", manifest["digest"])


def data_location(folder: str | Path, manifest: dict) -> str:
    """Where the artifact's data is: the folder itself, or the `location` it records."""
    return manifest.get("location", str(folder))


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize the asset that writes {Path(folder)} first")
    return json.loads(path.read_text())


def write_table(table: pa.Table, path: str | Path, schema: pa.Schema) -> None:
    """Write a table after casting it to its declared schema (a mismatch fails here, by column name)."""
    try:
        table = table.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, ValueError) as err:
        raise ValueError(f"{path}: table does not match its schema: {err}") from err
    pq.write_table(table, path)


def read_table(path: str | Path) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize the asset that writes it first")
    return pq.read_table(path)


def build_artifact(out_dir: str | Path, *, inputs: dict, settings: dict, code_version: str, build,
                   extra: dict | None = None) -> dict:
    """Fill a fresh folder with `build(tmp_dir) -> metrics`, write its manifest, move it into place."""
    with atomic_dir(out_dir) as tmp:
        metrics = build(tmp)
        manifest = write_manifest(tmp, inputs=inputs, settings=settings, metrics=metrics, code_version=code_version,
                                  extra=extra)
    return manifest


def reusable_manifest(out_dir: str | Path, inputs: dict, settings: dict, code_version: str) -> dict | None:
    """The existing artifact's manifest when it was made from exactly these inputs, settings and code."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("fingerprint") != fingerprint(inputs, settings, code_version):
        return None
    if digest_dir(out_dir) != manifest.get("digest"):  # edited or damaged since: rebuild
        return None
    return manifest
