"""File helpers every stage shares: checksums, atomic writes (temp file, then rename) and replacing
a folder whole."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder holding project.yml


def sha256_of(path: Path, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file_:
        for chunk in iter(lambda: file_.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename it over path: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file_:
            file_.write(data)
            file_.flush()
            os.fsync(file_.fileno())  # on disk before the rename makes it visible
        os.chmod(temp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs are for sharing
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: Path) -> bool:
    """Write a small text file (the report) the same way: temp file, then os.replace."""
    if path.exists() and path.read_text(encoding="utf8") == text:
        return False
    write_bytes_atomic(path, text.encode("utf8"))
    return True


def replace_dir(source: Path, target: Path) -> None:
    """Move source to target, replacing what was there, with the old copy removed only after."""
    if target.exists():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired)
    else:
        os.replace(source, target)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
