"""Where a conversion writes: its staging folder, every temporary file inside it, and the final swap.

A run assembles the model folder in ``.<name>.partial-<pid>`` beside the output (the staging rule
of ``converter.options``); coremltools' own temporary packages and weight files go inside that
folder too (``tempfile.tempdir`` points there for the run), so a killed run leaves one folder that
the next run sweeps. The finished folder is renamed into place with a rename that refuses to
replace: two runs into one new folder cannot silently replace each other. With ``--force`` the old
model folder is moved aside, the new one renamed in, and only then the old one deleted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from converter.errors import ConversionError
from converter.options import aside_folder, model_folder_problem, staging_folder

logger = logging.getLogger(__name__)

TEMPORARY_FILES = "tmp"  # inside the staging folder


@contextmanager
def staging_area(output_dir: Path) -> Iterator[Path]:
    """The run's staging folder, with every temporary file of this process inside it; removed
    unless the caller moved it into place."""
    staging = staging_folder(output_dir, os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    scratch = staging / TEMPORARY_FILES
    scratch.mkdir()
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(scratch)
    os.environ["TMPDIR"] = str(scratch)
    try:
        yield staging
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staging: Path, output_dir: Path, *, replace: bool) -> None:
    """Rename the finished ``staging`` folder to ``output_dir``.

    Without ``replace`` the rename fails if ``output_dir`` appeared meanwhile. With it, an existing
    ``output_dir`` must still be a model folder; it is moved aside, the new folder renamed in, and
    the old one deleted last (restored if the rename in fails).

    Two ``--force`` runs over one model folder may finish together: the one whose rename in comes
    second finds the other's new model in place. The old model it moved aside was to be replaced
    either way, and has been: it is deleted, and the run ends with one ``ConversionError`` saying
    another conversion replaced the folder first. Nothing is left as a hidden ``.replaced-`` folder.
    """
    shutil.rmtree(staging / TEMPORARY_FILES, ignore_errors=True)
    aside = None
    if replace and output_dir.exists():
        problem = model_folder_problem(output_dir)
        # A problem only because it vanished while read: another run moved it aside first.
        if problem and os.path.lexists(output_dir):
            raise ConversionError(f"{problem}; --force only replaces a coreml-chat model folder")
        if not problem:
            aside = aside_folder(output_dir, os.getpid())
            try:
                os.rename(output_dir, aside)
            except FileNotFoundError:  # another run moved it aside first: its swap decides
                aside = None
    try:
        rename_no_replace(staging, output_dir)
    except FileExistsError as error:
        if aside is not None:
            _put_back(aside, output_dir)
        if replace:
            raise ConversionError(
                f"another conversion replaced {output_dir} first; this conversion's model was "
                "discarded (convert again to replace it with this one)"
            ) from error
        raise ConversionError(
            f"{output_dir} appeared while converting (another conversion?); it was left as it "
            "is: choose another name, or use --force to replace a model folder"
        ) from error
    except BaseException:
        if aside is not None:
            _put_back(aside, output_dir)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _put_back(aside: Path, output_dir: Path) -> None:
    """Move the old model back into ``output_dir``; when another run's model is there already, the
    old one was replaced after all: delete it (it is never left hidden)."""
    try:
        rename_no_replace(aside, output_dir)
    except FileExistsError:
        logger.info("%s was replaced by another conversion: removing the old model", output_dir)
        shutil.rmtree(aside, ignore_errors=True)


def rename_no_replace(source: Path, destination: Path) -> None:
    """``rename(source, destination)`` that raises ``FileExistsError`` instead of replacing.

    ``os.rename`` silently replaces an empty folder; the kernels' own exclusive renames
    (``renameat2(RENAME_NOREPLACE)`` on Linux, ``renamex_np(RENAME_EXCL)`` on macOS) decide
    atomically. Elsewhere a check right before the rename narrows the window.
    """
    libc = _libc()
    src, dst = os.fsencode(source), os.fsencode(destination)
    result = None
    if sys.platform == "darwin" and libc is not None and hasattr(libc, "renamex_np"):
        result = libc.renamex_np(src, dst, 0x00000004)  # RENAME_EXCL
    elif sys.platform.startswith("linux") and libc is not None and hasattr(libc, "renameat2"):
        at_fdcwd = -100
        result = libc.renameat2(at_fdcwd, src, at_fdcwd, dst, 1)  # RENAME_NOREPLACE
    if result is not None:
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(source), None, str(destination))
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, "already exists", str(destination))
    os.rename(source, destination)


NEARLY_FULL_BYTES = 64 * 1024**2


def is_disk_full(error: BaseException, *, folder: Path | None = None) -> bool:
    """Whether ``error`` means the disk is full: ENOSPC (or EDQUOT) anywhere in its chain, or a
    failed write while ``folder``'s disk is nearly full (coremltools' weight writer reports
    ENOSPC as "Unknown error occurred while writing data to the file")."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(current)
        if "No space left on device" in text:
            return True
        if folder is not None and "writing" in text.lower():
            try:
                if shutil.disk_usage(folder).free < NEARLY_FULL_BYTES:
                    return True
            except OSError:
                pass
        current = current.__cause__ or current.__context__
    return False


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
