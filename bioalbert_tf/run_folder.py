"""A run folder's lifecycle: one run at a time, refusals before anything is written, an interrupt
that ends in one line.

`hold(folder, command)` is the context every command that writes a folder runs in:

- **A lock.** `<folder>/.lock` names its holder (host, pid, start time, command). A second run
  into a busy folder is refused at once with `FolderBusyError`, naming the holder. A lock whose
  process is gone (a crash, SIGKILL) is taken over with a warning: on the same host when its
  pid no longer runs; from any host (and on gs://, where no pid can be asked) when its lease has
  run out, as the holder renews it every `LEASE_S / 4` seconds while it runs.
  Local locks are created with O_EXCL; on gs:// the lock is written, read back after a pause,
  and kept only if it is still ours (two runs that start within that pause: one of them wins).
- **No trace of a refused run.** A folder the command created for itself is removed again when
  the run ends in an error and left nothing in it.
- **SIGTERM** (a scheduler's stop, `kill`) is raised as KeyboardInterrupt, as SIGINT is, so that
  the command saves what it can and ends in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid

from absl import logging

from bioalbert_tf import fileio, manifest

LOCK_NAME = ".lock"
LEASE_S = 600.0  # a lock not renewed for this long is stale, whoever holds it
GCS_SETTLE_S = 2.0  # gs://: the pause between writing the lock and reading it back


class FolderBusyError(OSError):
    """Another run holds the folder (an OSError, so that every command line reports it in one
    line as it does an I/O fault)."""


def _holder_line(holder: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (
        f"{holder.get('command', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"started {started})"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class Lock:
    """`<folder>/.lock`, held from `acquire()` to `release()`."""

    def __init__(self, folder: str, command: str, name: str = LOCK_NAME):
        self.folder, self.command = folder, command
        self.path = fileio.join(folder, name)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _content(self) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": time.time(),
                "renewed": time.time(),
                "command": self.command,
                "token": self.token,
            }
        )

    def _read(self) -> dict | None:
        try:
            with fileio.open_file(self.path, "r") as f:
                return json.loads(f.read() or "{}")
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            return {}  # being written by its holder, or cut by a crash: see _stale

    def _stale(self, holder: dict) -> str | None:
        """Why the lock `holder` read is abandoned, or None while it is held."""
        if holder:
            renewed = holder.get("renewed", holder.get("started"))
            age = time.time() - renewed if renewed else None
        else:  # unreadable: stale once its file is older than a lease
            age = time.time() - fileio.mtime(self.path)
        if age is not None and age > LEASE_S:
            return f"not renewed for {age:.0f} s"
        here = holder.get("host") == socket.gethostname() and not fileio.is_remote(self.path)
        if here and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
            return f"pid {holder['pid']} no longer runs"
        return None

    def acquire(self) -> None:
        while True:
            if self._create():
                break
            holder = self._read()
            if holder is None:  # released meanwhile
                continue
            why = self._stale(holder)
            if why is None:
                raise FolderBusyError(
                    f"{self.folder} is in use by {_holder_line(holder)}; wait for it to end, or "
                    f"choose another output folder (if that run is gone for good, remove "
                    f"{self.path})"
                )
            logging.warning(
                "%s: taking over the lock of %s: %s", self.folder, _holder_line(holder), why
            )
            self._take_over(holder)
            break
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="lock-renewer")
        self._renewer.start()

    def _create(self) -> bool:
        if fileio.is_remote(self.path):
            if fileio.exists(self.path):
                return False
            return self._write_and_confirm()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(self._content())
        return True

    def _take_over(self, holder: dict) -> None:
        if fileio.is_remote(self.path):
            if not self._write_and_confirm():
                raise FolderBusyError(f"{self.folder}: another run took over its stale lock first")
            return
        # Rename the stale lock aside; of two runs taking it over at once, one rename fails.
        aside = f"{self.path}.stale-{self.token}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            raise FolderBusyError(
                f"{self.folder}: another run took over its stale lock first"
            ) from None
        os.remove(aside)
        if not self._create():
            raise FolderBusyError(f"{self.folder}: another run took over its stale lock first")

    def _write_and_confirm(self) -> bool:
        fileio.write_text(self.path, self._content())
        time.sleep(GCS_SETTLE_S)
        holder = self._read() or {}
        return holder.get("token") == self.token

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_S / 4):
            try:
                holder = self._read() or {}
                if holder.get("token") != self.token:
                    return
                holder["renewed"] = time.time()
                # Whole or not at all: a run reading the lock meanwhile never sees half of one.
                fileio.write_atomic(self.path, json.dumps(holder))
            except Exception as e:  # noqa: BLE001 (a renewal that fails is retried next time)
                logging.warning("%s: could not renew the lock: %s", self.path, e)

    def release(self) -> None:
        self._stop.set()
        holder = self._read()
        if holder and holder.get("token") == self.token:
            fileio.remove(self.path)


STATS_NAME = "stats.json"  # written by tfrecords_builder beside its shards
METRICS_NAME = "train_metrics.jsonl"  # pretraining's log, one line per loop
# What marks a folder as another kind of run's (file names at its top level).
RUN_MARKERS = {
    "checkpoint": "a checkpoint state file (pretraining or conversion)",
    manifest.SETTINGS_NAME: "a pretraining or fine-tuning run's settings",
    STATS_NAME: "a TFRecords build's statistics",
    METRICS_NAME: "a pretraining run's metrics",
}
RUN_SUFFIXES = {".index": "checkpoint files", ".tfrecord": "TFRecord shards"}


def _run_kind(name: str, own=()) -> str | None:
    """What the file name `name` marks (RUN_MARKERS, RUN_SUFFIXES), or None; None too for the
    names and suffixes in `own` (what the asking command writes itself)."""
    if name in own or any(s.startswith(".") and name.endswith(s) for s in own):
        return None
    return RUN_MARKERS.get(name) or next(
        (kind for suffix, kind in RUN_SUFFIXES.items() if name.endswith(suffix)), None
    )


def foreign_contents(folder: str, own=()) -> list[str]:
    """What in `folder` (or a folder below it, one level down) belongs to another kind of run:
    checkpoints, a run's settings, TFRecord shards. [] when there is nothing of that kind.
    `own`: the marker names and suffixes (".index") the asking command writes itself."""
    if not fileio.isdir(folder):
        return []
    names = [n.rstrip("/") for n in fileio.listdir(folder)]
    if "saved_model.pb" in names:  # a SavedModel (its variables/ holds a checkpoint)
        return []
    found = []
    for name in names:
        path = fileio.join(folder, name)
        kind = _run_kind(name, own)
        if kind:
            found.append(f"{path} ({kind})")
        elif fileio.isdir(path) and not name.startswith("."):
            for sub in (n.rstrip("/") for n in fileio.listdir(path)):
                if _run_kind(sub):
                    found.append(f"{fileio.join(path, sub)} (another run's)")
                    break
    return found


def refuse_foreign(folder: str, command: str, own=()) -> None:
    """Refuses, whatever --overwrite says, to replace a folder holding another kind of run
    (`own`: as for `foreign_contents`)."""
    found = foreign_contents(folder, own)
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise FileExistsError(
            f"{folder} holds another kind of run ({shown}); {command} will not replace it, "
            "even with --overwrite: choose another output folder"
        )


def _raise_interrupt(signum, frame):
    del frame
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupted(error: KeyboardInterrupt, then: str) -> str:
    """The one line a command prints when SIGINT or SIGTERM ends it: which signal, and `then`
    (what was kept and how to go on)."""
    return f"interrupted ({str(error) or 'SIGINT'}): {then}"


@contextlib.contextmanager
def hold(folder: str, command: str, lock: bool = True, name: str = LOCK_NAME):
    """Runs the body as the folder's only run (see the module's docstring). `lock=False` (a
    worker of a multi-worker run, whose chief holds the lock) only creates the folder. `name`:
    the lock file's, for a command whose output replaces a folder whole (locked from its parent,
    as `.<folder name>.lock`)."""
    created = not fileio.exists(folder)
    fileio.makedirs(folder)
    held, previous = None, None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    failed = False
    try:
        if lock:
            held = Lock(folder, command, name)
            held.acquire()
        yield held
    except BaseException:
        failed = True
        raise
    finally:
        if held:
            held.release()  # first: the lock file must not keep an empty folder from going
        if failed and created and fileio.isdir(folder) and not fileio.listdir(folder):
            fileio.rmtree(folder)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
