"""Write a set of report files atomically: all of them, or none.

Every document is rendered in memory first; then each is written to a temporary file in
the output folder and, only when all are written, renamed into place. A failure at any
point removes the temporary files and leaves what was there before untouched.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from parcelguard.errors import ParcelguardError, one_line

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutputError(ParcelguardError):
    pass


def file_stem(scan_id: str, lang: str) -> str:
    """``parcelguard-report-<scan_id>`` (plus ``.zh-CN`` for Chinese), safe as a file name.

    A scan id comes from a results file, so anything but letters, digits, ``.``, ``_``
    and ``-`` is replaced: it can never name another folder.
    """
    safe = _UNSAFE.sub("_", scan_id).strip("._") or "scan"
    return f"parcelguard-report-{safe}" + ("" if lang == "en" else f".{lang}")


def check_output_dir(folder: Path) -> Path:
    """The output folder, created if its parent exists; raises if it cannot be written."""
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {one_line(exc)}") from exc
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write reports to {folder}: not a writable folder")
    return folder


def write_all(folder: Path, documents: Mapping[str, bytes]) -> list[Path]:
    """Write ``{file name: content}`` into ``folder``: every file, or none of them."""
    temps: list[tuple[Path, Path]] = []
    try:
        for name, content in documents.items():
            fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
            temps.append((Path(temp_name), folder / name))
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            # Reports describe the fleet's weaknesses: owner and group only.
            Path(temp_name).chmod(0o640)
        for tmp, final in temps:
            tmp.replace(final)
    except OSError as exc:
        for tmp, _final in temps:
            tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write reports to {folder}: {one_line(exc)}") from exc
    return [final for _tmp, final in temps]
