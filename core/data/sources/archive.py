"""Archive source: zip, tar, tar.gz/tgz (and bz2/xz tars), with folder layouts inside.

Members are extracted by our own streaming code into a fresh folder under the
workspace's ``tmp/`` (removed afterwards), never by ``extractall``:

- absolute paths, drive letters and ``..`` are refused; so are symbolic links,
  hard links and devices (tar members also go through ``tarfile.data_filter``);
- the member count, the bytes actually written (counted while streaming) and the
  compression ratio are capped; a member larger than an image may be is skipped;
- a second member with the same name is skipped (the first is kept).

Refused members are listed in the import report. An archive that is a bomb by
count is refused as a whole; one that is a bomb by ratio stops extracting and
imports what it had.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from core.data.decode import MAX_FILE_BYTES
from core.data.files import shown_name
from core.data.ingest import DatasetWriter
from core.data.sources.folder import IGNORED_DIRS, import_folder, unwrap_single_folder
from core.errors import ImageLabError
from core.store.workspace import Workspace
from core.units import format_size

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 16
MAX_NAME_BYTES = 255       # a file or folder name (NAME_MAX on Linux and macOS)
MAX_PATH_BYTES = 4096      # a whole member path (PATH_MAX on Linux)


@dataclass
class ArchiveLimits:
    """Guards applied while extracting an archive (zip-bomb and size limits).

    At most ``max_members`` files, ``max_total_bytes`` extracted in all and
    ``max_member_bytes`` per file; once ``ratio_floor_bytes`` are written, an extracted size
    over ``max_ratio`` times the archive's size stops the extraction.
    """
    max_members: int = 200_000
    max_total_bytes: int = 8 * 1024 ** 3
    max_member_bytes: int = MAX_FILE_BYTES
    max_ratio: float = 200.0            # uncompressed / compressed
    ratio_floor_bytes: int = 8 * 1024 ** 2  # ratios are judged once this much is written


def import_archive(ws: Workspace, writer: DatasetWriter, path: Path, *, display_name: str = "",
                   limits: ArchiveLimits | None = None, label: str | None = None,
                   progress=None) -> None:
    """Extract ``path`` safely into the workspace's tmp/ and import it as a folder."""
    path = Path(path)
    display = shown_name(display_name or path.name)
    if not path.is_file():
        raise ImageLabError(f"archive {path} not found")
    dest = ws.tmp_dir / f"extract-{secrets.token_hex(6)}"
    dest.mkdir(parents=True)
    try:
        extract_safely(path, dest, writer, display, limits or ArchiveLimits(), progress)
        root = unwrap_single_folder(dest)
        for entry in sorted(dest.iterdir()) if root != dest else ():   # never listed below
            if entry.name in IGNORED_DIRS:
                writer.note(f"{display}:{entry.name}/: macOS metadata folder ignored")
        prefix = f"{display}:" + ("" if root == dest else root.relative_to(dest).as_posix() + "/")
        import_folder(writer, root, prefix=prefix, label=label)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def extract_safely(path: Path, dest: Path, writer: DatasetWriter, display: str,
                   limits: ArchiveLimits, progress=None) -> int:
    """Extract regular members of ``path`` under ``dest``; return the count extracted."""
    if zipfile.is_zipfile(path):
        return _extract_zip(path, dest, writer, display, limits, progress)
    try:
        is_tar = tarfile.is_tarfile(path)
    except OSError:
        is_tar = False
    if is_tar:
        return _extract_tar(path, dest, writer, display, limits, progress)
    raise ImageLabError(f"{display} is not a zip or tar archive (or it is damaged)")


class _Watched(tarfile.TarInfo):
    """Keeps on its TarFile why the last header could not be read: tarfile ends a listing
    at a damaged header as at the end, and the rest must not be dropped unreported."""

    @classmethod
    def fromtarfile(cls, tarfile_):
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as exc:
            tarfile_.bad_header = exc
            raise


class _Budget:
    def __init__(self, limits: ArchiveLimits, archive_bytes: int):
        self.limits, self.archive_bytes, self.written = limits, max(archive_bytes, 1), 0

    def over_ratio(self) -> bool:
        return (self.written > self.limits.ratio_floor_bytes
                and self.written > self.limits.max_ratio * self.archive_bytes)

    def over_total(self) -> bool:
        return self.written > self.limits.max_total_bytes


def _safe_name(name: str) -> str | None:
    """A relative POSIX path inside the archive, or None when it must be refused."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _check_count(n: int, display: str, limits: ArchiveLimits) -> None:
    if n > limits.max_members:
        raise ImageLabError(f"{display} has {n:,} entries, more than the limit of "
                            f"{limits.max_members:,}: refused as a possible zip bomb")


def _stream(src, target: Path, budget: _Budget, limit: int) -> str | None:
    """Copy ``src`` to ``target`` counting bytes; return a reason when it had to stop."""
    written = 0
    with open(target, "wb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                return None
            written += len(chunk)
            budget.written += len(chunk)
            if written > limit:
                return f"file too large (over {format_size(limit)} when extracted)"
            if budget.over_ratio():
                return (f"decompression bomb: the archive expands more than "
                        f"{budget.limits.max_ratio:.0f}× its size")
            if budget.over_total():
                return f"archive expands beyond {format_size(budget.limits.max_total_bytes)}"
            out.write(chunk)


def _place(dest: Path, safe: str, seen: set[str]) -> tuple[Path | None, str | None]:
    """(where member ``safe`` goes, None) or (None, why it cannot be extracted)."""
    if len(os.fsencode(safe)) > MAX_PATH_BYTES:          # bytes on disk (a tar's name may
        return None, f"path longer than {MAX_PATH_BYTES} bytes (refused)"   # not be UTF-8)
    if any(len(os.fsencode(part)) > MAX_NAME_BYTES for part in safe.split("/")):
        return None, f"a file or folder name longer than {MAX_NAME_BYTES} bytes (refused)"
    key = safe.lower()
    if key in seen:
        return None, "duplicate name in archive (the first one was kept)"
    seen.add(key)
    target = dest / safe
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:       # a file of the archive already has a folder's name on this path
        return None, "a file and a folder of the archive share a name on this path (refused)"
    if target.is_dir():
        return None, "a folder of the archive has this file's name (refused)"
    return target, None


def _extract_zip(path, dest, writer, display, limits, progress) -> int:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageLabError(f"{display} is not a readable zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        _check_count(len(infos), display, limits)
        budget = _Budget(limits, path.stat().st_size)
        seen: set[str] = set()
        count = 0
        for k, info in enumerate(infos):
            rel = f"{display}:{info.filename}"
            if info.is_dir():
                continue
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                writer.skip(rel, "symbolic link in archive (refused)")
                continue
            if mode not in (0, 0o100000):
                writer.skip(rel, "special file in archive (refused)")
                continue
            safe = _safe_name(info.filename)
            if safe is None:
                writer.skip(rel, "unsafe path in archive (absolute or with '..'): refused")
                continue
            if info.file_size > limits.max_member_bytes:
                writer.skip(rel, f"file too large ({format_size(info.file_size)})")
                continue
            if info.compress_size and info.file_size > limits.ratio_floor_bytes / 8 and \
                    info.file_size / info.compress_size > limits.max_ratio:
                writer.skip(rel, f"zip bomb: compression ratio "
                                 f"{info.file_size / info.compress_size:.0f}:1")
                continue
            target, refused = _place(dest, safe, seen)
            if target is None:
                writer.skip(rel, refused)
                continue
            try:
                with zf.open(info) as src:
                    reason = _stream(src, target, budget, limits.max_member_bytes)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                    RuntimeError) as exc:
                reason = f"damaged archive member: {exc}"
            if reason:
                target.unlink(missing_ok=True)
                writer.skip(rel, reason)
                if budget.over_ratio() or budget.over_total():
                    _skip_rest(writer, display, len(infos) - k - 1, reason)
                    break
                continue
            count += 1
            if progress and count % 200 == 0:
                progress(count, len(infos), f"extracting {display}")
        return count


def _extract_tar(path, dest, writer, display, limits, progress) -> int:
    try:
        tf = tarfile.open(path, "r:*", tarinfo=_Watched)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageLabError(f"{display} is not a readable tar archive: {exc}") from None
    budget = _Budget(limits, path.stat().st_size)
    seen: set[str] = set()
    count = members = 0
    with tf:
        try:
            for member in tf:
                members += 1
                _check_count(members, display, limits)
                rel = f"{display}:{shown_name(member.name)}"
                if member.isdir():
                    continue
                if member.issym():
                    writer.skip(rel, "symbolic link in archive (refused)")
                    continue
                if member.islnk():
                    writer.skip(rel, "hard link in archive (refused)")
                    continue
                if not member.isreg():
                    writer.skip(rel, "device or special file in archive (refused)")
                    continue
                safe = _safe_name(member.name)
                if safe is None:
                    writer.skip(rel, "unsafe path in archive (absolute or with '..'): refused")
                    continue
                try:
                    tarfile.data_filter(member, str(dest))
                except tarfile.FilterError as exc:
                    writer.skip(rel, f"refused by the tar data filter: {exc}")
                    continue
                if member.size > limits.max_member_bytes:
                    writer.skip(rel, f"file too large ({format_size(member.size)})")
                    continue
                target, refused = _place(dest, safe, seen)
                if target is None:
                    writer.skip(rel, refused)
                    continue
                src = tf.extractfile(member)
                try:
                    reason = _stream(src, target, budget, limits.max_member_bytes) if src else \
                        "unreadable archive member"
                except OSError as exc:    # e.g. a path too long for this file system
                    reason = f"cannot be extracted here: {exc.strerror or exc}"
                except (tarfile.TarError, EOFError, zlib.error):
                    target.unlink(missing_ok=True)      # never import half a member
                    raise
                if reason:
                    target.unlink(missing_ok=True)
                    writer.skip(rel, reason)
                    if budget.over_ratio() or budget.over_total():
                        _skip_rest(writer, display, None, reason)
                        break
                    continue
                count += 1
                if progress and count % 200 == 0:
                    progress(count, None, f"extracting {display}")
            else:       # the listing ended: at the end marker, or at a damaged header?
                bad = getattr(tf, "bad_header", None)
                if isinstance(bad, (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError)):
                    raise tarfile.ReadError(f"an unreadable entry header ({bad})")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:   # zlib: a damaged stream
            writer.skip(f"{display}:(after {count} files)",
                        f"damaged archive: {exc or type(exc).__name__}; the rest was not read")
    return count


def _skip_rest(writer, display: str, remaining: int | None, reason: str) -> None:
    what = f"the remaining {remaining} entries" if remaining is not None else "the rest of the archive"
    writer.skip(f"{display}:(rest)", f"{what} not extracted: {reason}")
