"""File output shared by every stage: atomic writes, protected inputs and spreadsheet-safe CSV text.

* Atomic: each file is written to a temporary file beside the target, then renamed, so a failed or
  interrupted run never leaves a half-written file behind. The file is created with mode ``0o666`` minus the
  process umask (as ``open()`` would), never forced to a fixed mode.
* Protected inputs: inside :func:`protecting` (every ``gpuplan`` command runs in one, with its input files),
  a write whose target is an input file, or lies inside an input folder, is refused with :class:`OutputError`
  before anything is written: an output never overwrites an input.
* Spreadsheet-safe CSV: every CSV the tool writes passes through :func:`safe_csv_frame`, which prefixes a
  single quote to a text cell that a spreadsheet would run as a formula (first character ``= + - @``, tab or
  carriage return), unless the text is a plain number; numeric columns are untouched.
* Input text (YAML and CSV settings files) is read by :func:`read_text`, which names the encoding of a file
  that is not UTF-8 instead of failing on a codec error.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a cell as a formula."""
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_PROTECTED: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("gpuplan_protected", default=())


class OutputError(ValueError):
    """An output path that cannot be written (an input, a folder, not writable): one line with the fix."""


# --- spreadsheet-safe text ------------------------------------------------------------------------
def safe_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def safe_csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (and column names) cannot run as spreadsheet formulas.

    Only object, string and categorical columns are looked at; numbers, booleans and timestamps are left as they
    are. Returns ``df`` itself when nothing needs changing.
    """
    out = df
    for col in df.columns:
        dtype = df[col].dtype
        if not (pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype | pd.CategoricalDtype)):
            continue
        values = df[col].astype(object) if isinstance(dtype, pd.CategoricalDtype) else df[col]
        if not any(isinstance(v, str) and v.startswith(FORMULA_START) for v in values.to_numpy()):
            continue
        if out is df:
            out = df.copy()
        out[col] = values.map(safe_cell, na_action="ignore")
    renamed = {c: safe_cell(c) for c in out.columns if isinstance(c, str) and safe_cell(c) != c}
    return out.rename(columns=renamed) if renamed else out


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as spreadsheet-safe CSV text (no index): what downloads and files contain."""
    return safe_csv_frame(df).to_csv(index=False)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """:func:`csv_text` as UTF-8 bytes, for download buttons."""
    return csv_text(df).encode("utf-8")


# --- protected inputs -----------------------------------------------------------------------------
def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


@contextlib.contextmanager
def protecting(inputs: Iterable[str | Path | None]) -> Iterator[None]:
    """Within the block, :func:`check_output` (so every writer here) refuses to write over these inputs."""
    paths = tuple(_resolved(p) for p in inputs if p is not None and str(p) not in ("", "-"))
    token = _PROTECTED.set(_PROTECTED.get() + paths)
    try:
        yield
    finally:
        _PROTECTED.reset(token)


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def clashing_input(target: str | Path) -> Path | None:
    """The protected input that writing ``target`` would overwrite (or add a file to), else None."""
    out = _resolved(target)
    for src in _PROTECTED.get():
        if _same(out, src):
            return src
        if src.is_dir() and (out == src or src in out.parents):
            return src
    return None


def check_output(target: str | Path, label: str | None = None) -> None:
    """Raise :class:`OutputError` if ``target`` is a protected input or lies inside an input folder."""
    src = clashing_input(target)
    if src is None:
        return
    what = "is the input" if _same(_resolved(target), src) or not src.is_dir() else "lies inside the input folder"
    raise OutputError(f"{label or 'output'} {target} {what} {src} (fix: write the output to another path; "
                      "gpuplan never overwrites or adds to its inputs)")


# --- atomic writes --------------------------------------------------------------------------------
def os_error_text(exc: OSError, path: str | Path | None = None) -> str:
    """One line for an operating-system error on ``path`` (default: the error's own file name), with the fix."""
    import errno

    where = path if path is not None else (exc.filename or "")
    reason = exc.strerror or exc.__class__.__name__
    fixes = {errno.EACCES: "choose a folder you can write to, or change its permissions",
             errno.EPERM: "choose a folder you can write to, or change its permissions",
             errno.EROFS: "the file system is read-only: choose another folder",
             errno.ENOENT: "check the path; create the folder first if it is an output folder",
             errno.EISDIR: "it is a folder: give the path of a file",
             errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
             errno.EEXIST: "remove it or choose another path",
             errno.ENOSPC: "the disk is full: free space or choose another folder",
             errno.ENAMETOOLONG: "use a shorter path"}
    fix = fixes.get(exc.errno or -1, "check the path and its permissions")
    return f"{where}: {reason[:1].lower() + reason[1:]} (fix: {fix})"


def _create_exclusive(folder: Path, name: str) -> tuple[int, Path]:
    """A new temporary file beside the target, mode 0o666 minus the umask (mkstemp would force 0o600)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name beside {folder / name}")


def prepare_output(path: str | Path, label: str | None = None) -> Path:
    """Check an output file path before a long computation: not an input, not a folder, parent creatable."""
    path = Path(path)
    check_output(path, label)
    if path.is_dir():
        raise OutputError(f"{label or 'output'} {path} is a folder (fix: give a file path, e.g. "
                          f"{path / 'out.csv'})")
    _check_folder(path.parent, path, label)
    return path


def _check_folder(folder: Path, target: Path, label: str | None) -> None:
    """The nearest existing folder above ``target`` must be a folder we can write to."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {label + ' ' if label else ''}{target}: {existing} is a file, not a folder "
                          "(fix: choose a path in a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {label + ' ' if label else ''}{target}: {existing}: permission denied "
                          "(fix: choose a folder you can write to, or change its permissions)")


UTF8_FIX = "save the file as UTF-8 (in Excel: Save As > CSV UTF-8; in an editor: encoding UTF-8)"


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text of a file's bytes (a UTF-8 byte-order mark is dropped).

    Raises:
        UsageError: the bytes are UTF-16/UTF-32 (named from the byte-order mark or NUL bytes) or another
            encoding such as Latin-1 (naming the first byte that is not UTF-8 and its line).
    """
    from usage.schema import UsageError

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
    """Call ``write(fh)`` on a temporary text file in the target folder, then rename it to ``path``.

    Raises:
        OutputError: ``path`` is a protected input, a folder, or cannot be created (one line naming it).
    """
    path = prepare_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_exclusive(path.parent, path.name)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_error_text(exc)}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {os_error_text(exc, path)}") from None
        raise
    return path


def write_folder_atomic(out_dir: str | Path, files: dict[str, Callable[[IO[str]], Any]]) -> list[Path]:
    """Write several files into ``out_dir`` so that none appears until all are written.

    Every file is written into a new temporary folder beside ``out_dir``; then the folder is renamed to
    ``out_dir`` (when it does not exist yet) or each file is renamed into it (other files in ``out_dir`` are
    kept). A failure leaves ``out_dir`` as it was.

    Raises:
        OutputError: ``out_dir`` is a file, an input, inside an input folder, or cannot be created.
    """
    out_dir = Path(out_dir)
    check_output(out_dir, "--out-dir")
    for name in files:
        check_output(out_dir / name, "--out-dir")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {out_dir} is a file, not a folder (fix: give a folder path, e.g. "
                          f"{out_dir.with_suffix('')}_report)")
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            tmp_dir = parent / f".{out_dir.name}.{secrets.token_hex(4)}.tmp"
            try:
                os.mkdir(tmp_dir, 0o777)  # the umask applies, as for any new folder
                break
            except FileExistsError:
                continue
    except OSError as exc:
        raise OutputError(f"cannot write {out_dir}: {os_error_text(exc)}") from None
    try:
        for name, write in files.items():
            with open(tmp_dir / name, "w", newline="", encoding="utf-8") as fh:
                write(fh)
        if not out_dir.exists():
            os.rename(tmp_dir, out_dir)
        else:
            for name in files:
                os.replace(tmp_dir / name, out_dir / name)
            tmp_dir.rmdir()
    except BaseException as exc:
        for leftover in tmp_dir.glob("*") if tmp_dir.exists() else ():
            leftover.unlink(missing_ok=True)
        if tmp_dir.exists():
            tmp_dir.rmdir()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {out_dir}: {os_error_text(exc, out_dir)}") from None
        raise
    return [out_dir / name for name in files]


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as spreadsheet-safe CSV (no index, :func:`safe_csv_frame`) atomically."""
    safe = safe_csv_frame(df)
    return write_atomic(path, lambda fh: safe.to_csv(fh, index=False))


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write an object as indented JSON atomically."""
    return write_atomic(path, lambda fh: (json.dump(obj, fh, indent=2), fh.write("\n")))
