"""File input and output shared by every stage.

Output is atomic: write to a temporary file beside the target, then rename, so a failed or interrupted run
never leaves a half-written file behind. Input text (YAML and CSV settings files) is read by
:func:`read_text`, which names the encoding of a file that is not UTF-8 instead of failing on a codec error.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd

UTF8_FIX = "save the file as UTF-8 (in Excel: Save As > CSV UTF-8; in an editor: encoding UTF-8)"


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text of a file's bytes (a UTF-8 byte-order mark is dropped).

    Raises:
        UsageError: the bytes are UTF-16/UTF-32 (named from the byte-order mark or NUL bytes) or another
            encoding such as Latin-1 (naming the first byte that is not UTF-8 and its line).
    """
    from forecasting.schema import UsageError

    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom) and not data.startswith(codecs.BOM_UTF8):
            raise UsageError(source, f"file is {name} text (byte-order mark {bom.hex(' ').upper()}), not UTF-8",
                             fix=UTF8_FIX)
    if data[:4096].count(b"\x00") > 8:
        raise UsageError(source, "file holds NUL bytes: probably UTF-16 text without a byte-order mark, or "
                         "not a text file", fix=UTF8_FIX)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UsageError(source, f"file is not UTF-8 text (byte 0x{data[error.start]:02X} on line {line}; "
                         "probably Latin-1 or Windows-1252)", row=line, where=[f"line {line}"],
                         fix=UTF8_FIX) from None


def read_text(path: str | Path) -> str:
    """A text file's content, decoded as UTF-8 (see :func:`decode_text`)."""
    return decode_text(Path(path).read_bytes(), str(path))


def write_atomic(path: str | Path, write: Callable[[IO[str]], Any]) -> Path:
    """Call ``write(fh)`` on a temporary text file in the target folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            write(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as CSV (no index) atomically."""
    return write_atomic(path, lambda fh: df.to_csv(fh, index=False))


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write an object as indented JSON atomically."""
    return write_atomic(path, lambda fh: (json.dump(obj, fh, indent=2), fh.write("\n")))
