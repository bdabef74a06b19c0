"""Paths that may be local or remote (`gs://`, any scheme TensorFlow's filesystems know).

Local paths use the standard library, so builder workers do not pay for importing TensorFlow
(~5 s, ~750 MB RSS); remote paths go through `tf.io.gfile`, imported on first use.
"""

from __future__ import annotations

import contextlib
import errno
import glob as _glob
import io
import json
import os
import random
import re
import shutil


def is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def _local(path: str) -> str:
    path = str(path)
    return path[len("file://") :] if path.startswith("file://") else path


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


class _RawGFile(io.RawIOBase):
    """A tf.io.gfile.GFile as a raw stream, so a BufferedReader gives it the full file API
    (`readline(limit)`, `peek`, use by gzip/tarfile/csv)."""

    def __init__(self, f):
        self._f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._f.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def open_file(path: str, mode: str = "rb"):
    """Opens a file for reading or writing; binary and text modes as for `open`."""
    if is_remote(path):
        f = _gfile().GFile(path, mode)
        return io.BufferedReader(_RawGFile(f), buffer_size=1 << 20) if mode == "rb" else f
    writing = "w" in mode or "a" in mode
    if writing:
        os.makedirs(os.path.dirname(os.path.abspath(_local(path))), exist_ok=True)
    f = open(_local(path), mode) if "b" in mode else open(_local(path), mode, encoding="utf-8")  # noqa: SIM115 (returned open)
    return _Named(f, str(path)) if writing else f


class _Named:
    """A local file being written whose OSErrors name it: a full disk fails a write or the
    close, and the OS names no file then."""

    def __init__(self, f, path: str):
        self._f, self._path = f, path

    def _call(self, name, *args):
        try:
            return getattr(self._f, name)(*args)
        except OSError as e:
            if e.filename is None:
                e.filename = self._path
            raise

    def write(self, data):
        return self._call("write", data)

    def writelines(self, lines):
        return self._call("writelines", lines)

    def flush(self):
        return self._call("flush")

    def close(self):
        return self._call("close")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(_local(path))


def isdir(path: str) -> bool:
    """Whether path is a folder. Remote: TensorFlow's isdir answers False when the store cannot
    be reached at all; `exists` then raises the reason (network, credentials), which is raised."""
    if not is_remote(path):
        return os.path.isdir(_local(path))
    if _gfile().isdir(path):
        return True
    _gfile().exists(path)
    return False


def makedirs(path: str) -> None:
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(_local(path), exist_ok=True)


def size(path: str) -> int:
    return _gfile().stat(path).length if is_remote(path) else os.path.getsize(_local(path))


def mtime(path: str) -> float:
    """Seconds since the epoch of the last change."""
    if is_remote(path):
        return _gfile().stat(path).mtime_nsec / 1e9
    return os.path.getmtime(_local(path))


def walk_files(path: str) -> list[str]:
    """Relative paths ('/'-separated) of every file under a folder, sorted."""
    out = []
    if is_remote(path):
        for folder, _, files in _gfile().walk(path):
            rel = folder[len(path.rstrip("/")) :].strip("/")
            out.extend(f"{rel}/{f}" if rel else f for f in files)
    else:
        for folder, _, files in os.walk(_local(path)):
            rel = os.path.relpath(folder, _local(path)).replace(os.sep, "/")
            out.extend(f if rel == "." else f"{rel}/{f}" for f in files)
    return sorted(out)


def glob(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern (`*`, `?`, `[...]`; `**` locally)."""
    if is_remote(pattern):
        return sorted(_gfile().glob(pattern))
    return sorted(_glob.glob(_local(pattern), recursive=True))


def expand(patterns, what: str = "input files", in_order: bool = False) -> list[str]:
    """The one glob expander. Comma lists and globs, local or gs:// -> files: a glob's matches
    (folders left out), a plain path as it is. A glob that matches nothing, a path that does
    not exist or is a folder, or nothing at all is an error naming `what`. Sorted and unique;
    `in_order`: in the order given instead."""
    if isinstance(patterns, str):
        patterns = [patterns]
    files = []
    for item in patterns:
        for pattern in (p.strip() for p in str(item).split(",")):
            if not pattern:
                continue
            if any(c in pattern for c in "*?["):
                matched = [m for m in glob(pattern) if not isdir(m)]
                if not matched:
                    raise FileNotFoundError(f"no {what} match {pattern!r}")
                files.extend(matched)
            elif isdir(pattern):
                raise IsADirectoryError(
                    f"{what}: {pattern!r} is a directory; pass a glob such as {pattern}/*"
                )
            elif not exists(pattern):
                raise FileNotFoundError(f"{what}: not found: {pattern}")
            else:
                files.append(pattern)
    if not files:
        raise ValueError(f"no {what} given")
    return files if in_order else sorted(set(files))


def listdir(path: str) -> list[str]:
    return sorted(_gfile().listdir(path) if is_remote(path) else os.listdir(_local(path)))


def rename(src: str, dst: str, overwrite: bool = True) -> None:
    """Atomic on a local filesystem; on GCS a copy then delete (objects appear whole)."""
    if is_remote(src) or is_remote(dst):
        _gfile().rename(src, dst, overwrite=overwrite)
    elif overwrite:
        os.replace(_local(src), _local(dst))
    else:
        if os.path.exists(_local(dst)):
            raise FileExistsError(dst)
        os.rename(_local(src), _local(dst))


TMP_MARK = ".tmp-"  # <path>.tmp-<pid>-<random>: a file being written, renamed to <path> whole


def tmp_path(path: str) -> str:
    """A temporary name beside `path`, unique to this writer (safe with concurrent writers)."""
    return f"{path}{TMP_MARK}{os.getpid()}-{random.getrandbits(32):08x}"


def final_name(name: str) -> str:
    """The name a temporary file (`tmp_path`) will have; `name` itself for any other file."""
    return name.split(TMP_MARK, 1)[0]


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """The one atomic write, local and gs://, streamed: the file object writes `tmp_path(path)`,
    which becomes `path` when the block ends, and is removed if it raises. A crash leaves the
    old file (or none), never half of one."""
    tmp = tmp_path(path)
    try:
        with open_file(tmp, mode) as f:
            yield f
        rename(tmp, path, overwrite=True)
    except BaseException:
        remove(tmp)
        raise


def write_atomic(path: str, data: str | bytes) -> None:
    """`data` written whole or not at all (`atomic_open`)."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def write_text_atomic(path: str, text: str) -> None:
    """`write_atomic` of a text."""
    write_atomic(path, text)


def write_json_atomic(path: str, value) -> None:
    """`value` as indented JSON, written whole or not at all (`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(value, indent=2))


def read_json(path: str):
    with open_file(path, "r") as f:
        return json.load(f)


def move_folder(src: str, dst: str) -> None:
    """Renames a folder to `dst`, which must not exist: in one step locally; on a remote
    filesystem object by object (it has no folders to rename, only objects named by path)."""
    if not is_remote(src) and not is_remote(dst):
        rename(src, dst, overwrite=False)
        return
    src = str(src).rstrip("/")
    for rel in walk_files(src):
        _gfile().rename(join(src, rel), join(dst, rel), overwrite=False)
    rmtree(src)  # what is left of it: folder markers


def replace_folder(path: str, write) -> None:
    """Calls `write(folder)` with an empty folder beside `path` (`<path>.writing`), then puts
    that folder in place of `path`, which ends up holding only what `write` wrote. An earlier
    folder at `path` is moved aside (`<path>.replaced`) and removed once the new one is in
    place: a crash while writing leaves it whole."""
    path = str(path).rstrip("/")
    writing, replaced = path + ".writing", path + ".replaced"
    rmtree(writing)  # left by a crash
    makedirs(writing)
    write(writing)
    rmtree(replaced)
    if exists(path):
        move_folder(path, replaced)
    move_folder(writing, path)
    rmtree(replaced)


def existing_outputs(paths) -> list[str]:
    """Those of `paths` a command would replace: files that exist, and non-empty folders."""
    found = []
    for path in paths:
        if isdir(path):
            if listdir(path):
                found.append(f"{path} (a non-empty folder)")
        elif exists(path):
            found.append(path)
    return found


def refuse_overwrite(
    paths, overwrite: bool, instead: str = "Choose another output location"
) -> None:
    """Raises FileExistsError naming the outputs in `paths` that already exist, unless `overwrite`
    (a command's --overwrite). Called before a command writes anything."""
    existing = existing_outputs(paths)
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist and would be replaced: "
            + ", ".join(existing)
            + f". {instead}, or pass --overwrite to replace them."
        )


def remove(path: str) -> None:
    """Removes a file if it exists."""
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().remove(path)
    elif os.path.exists(_local(path)):
        os.remove(_local(path))


def rmtree(path: str) -> None:
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().rmtree(path)
    else:
        shutil.rmtree(_local(path), ignore_errors=True)


def join(*parts: str) -> str:
    first = str(parts[0])
    if is_remote(first):
        return "/".join([first.rstrip("/")] + [str(p).strip("/") for p in parts[1:]])
    return os.path.join(*map(str, parts))


def basename(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def dirname(path: str) -> str:
    """The folder of `path`, local or gs://: "." for a bare name, "/" for a name at the root."""
    path = str(path).rstrip("/")
    return (path.rsplit("/", 1)[0] or "/") if "/" in path else "."


# ------------------------------------------------------------------------- faults, in one line

_CAUSES = {
    errno.EACCES: "permission denied (check the owner and mode of the folder)",
    errno.EPERM: "permission denied (check the owner and mode of the folder)",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (free some, then rerun: finished work is kept)",
    errno.EDQUOT: "disk quota exceeded (free some, then rerun: finished work is kept)",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EISDIR: "a folder is in the way where a file is needed",
    errno.ENOENT: "no such file or folder",
}


def write_text(path: str, text: str) -> None:
    """Writes text to path; an OSError names the path even when the OS does not (a full disk
    fails the write or the close, not the open: open_file's writer names it)."""
    with open_file(path, "w") as f:
        f.write(text)


def fault_types() -> tuple[type[BaseException], ...]:
    """What a command line turns into one line with `describe_fault`: OSError, and TensorFlow's
    errors (gs:// and other remote paths) once TensorFlow is imported."""
    import sys

    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return (OSError,) + ((errors.OpError,) if errors is not None else ())


def describe_fault(error: BaseException) -> str:
    """One line for an I/O fault: the path and the cause (permission, not a folder, no space,
    network or credentials); other errors as their message."""
    if not isinstance(error, fault_types()):
        return str(error)
    code, path = getattr(error, "errno", None), getattr(error, "filename", None)
    if isinstance(error, OSError) and code is None:
        return str(error)  # raised by this project with its own message
    if isinstance(error, OSError):
        cause = _CAUSES.get(code, os.strerror(code))
        if code == errno.EEXIST and path and os.path.isfile(path):
            cause = "a file is in the way where a folder is needed"
        elif code == errno.EEXIST:
            cause = "already exists"
        return f"{path}: {cause}" if path else f"{cause} ({error})"
    name, message = type(error).__name__, str(getattr(error, "message", None) or error)
    # TensorFlow puts the path on a line of its own ("\n\t when reading metadata of gs://..."),
    # and wraps an op's error in "{{function_node ...}} ... [Op:SaveV2]".
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]$", "", message)
    lowered = message.lower()
    if name == "PermissionDeniedError" or "permission denied" in lowered:
        cause = "permission denied"
    elif "no space" in lowered or name == "ResourceExhaustedError":
        cause = "no space left (free some, then rerun: finished work is kept)"
    elif "not a directory" in lowered:
        cause = "a file is in the way where a folder is needed"
    elif name in ("UnauthenticatedError",) or "credential" in lowered or "401" in message:
        cause = "no or wrong credentials for the remote store"
    elif name in ("UnavailableError", "DeadlineExceededError") or "resolve" in lowered:
        cause = "the remote store cannot be reached (network)"
    else:
        return f"{name}: {message or name}"
    return f"{message} ({cause})"
