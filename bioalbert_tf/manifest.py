"""A run's manifest: what a folder's results depend on, recorded before anything else is written
and compared on every rerun. The one answer to "is this folder the same run?" for every command:
pretraining and fine-tuning (`run_settings.json`), the TFRecord builder (each work group's
sidecar), the benchmark runner (`metrics.json`'s "run"), the demo's stages and the domain bench.

A manifest is a JSON object. What goes in it is the caller's choice: the settings that change
results (flags, the model config, input files by name and size, the vocabulary, the init
checkpoint), not those that do not (batch size of prediction, logging, a path spelled another way
for the same file: record files with `files_of`, by name and size, not by path).

- `differences(before, now, source)` names each differing setting with both values, one row each.
- `check(path, now, ...)` reads the recorded manifest and returns it (None: a new run) when it is
  this run's (resume it or skip it); another run's is refused with every difference named, unless
  the caller replaces the folder's outputs (--overwrite).
- `record(path, now)` writes it whole or not at all; `digest(now)` names it in a few characters
  (a folder or a sidecar keyed by its settings).
"""

from __future__ import annotations

import collections
import hashlib
import json

from bioalbert_tf import fileio

SETTINGS_NAME = "run_settings.json"  # pretraining's and fine-tuning's manifest in output_dir
COMMAND = "command"  # the command whose run recorded a manifest
_SHOWN = 5  # files named in a row, per kind of difference
_MISSING = object()


class SettingsMismatchError(ValueError):
    """A folder whose recorded manifest differs from this run's settings."""


def files_of(paths) -> list[list]:
    """Sorted [name, size in bytes] pairs: files compared by name and size, not path (the same
    files copied to another folder or bucket are the same input)."""
    return sorted([fileio.basename(p), fileio.size(p)] for p in paths)


def digest(value) -> str:
    """16 hex digits of the sha256 of `value` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def read(path: str) -> dict | None:
    """The manifest recorded at `path`, or None when there is none."""
    return fileio.read_json(path) if fileio.exists(path) else None


def record(path: str, settings: dict) -> None:
    """Writes the manifest at `path` whole or not at all."""
    fileio.write_json_atomic(path, settings)


def _is_files(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[1], int) for p in value
    )


def _files_row(label: str, before: list, now: list, source: str) -> str:
    """Which recorded files are gone, which are new."""

    def shown(pairs) -> str:
        names = [f"{name} ({size} bytes)" for name, size in sorted(pairs.elements())]
        more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        return ", ".join(names[:_SHOWN]) + more

    old = collections.Counter(tuple(p) for p in before)
    new = collections.Counter(tuple(p) for p in now)
    parts = [f"{len(before)} file(s) in {source}, {len(now)} now"]
    if old - new:
        parts.append(f"recorded but not given now: {shown(old - new)}")
    if new - old:
        parts.append(f"given now but not recorded: {shown(new - old)}")
    return f"  {label}: " + "; ".join(parts)


def _shown(value) -> str:
    return "(not recorded)" if value is _MISSING else repr(value)


def differences(
    before: dict,
    now: dict,
    source: str,
    keys=None,
    labels: dict[str, str] | None = None,
    sources: dict[str, str] | None = None,
) -> list[str]:
    """One row for each of `keys` (default: every key of either) whose value differs:
    `  <label>: <before> in <source>, <now> now`. `labels` names keys (default: the key itself);
    `sources` says where a key's value comes from now, for "in <that>" instead of "now". File
    lists (`files_of`) are shown as the files gone and the files new; a dict is compared key by
    key, one row per differing key (`<label> <key>`)."""
    labels, sources = labels or {}, sources or {}
    rows = []
    for key in keys if keys is not None else sorted(set(before) | set(now)):
        old, new = before.get(key, _MISSING), now.get(key, _MISSING)
        if old == new:
            continue
        label = labels.get(key, key)
        where = f"in {sources[key]}" if key in sources else "now"
        if _is_files(old) and _is_files(new):
            rows.append(_files_row(label, old, new, source))
        elif isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                a, b = old.get(sub, _MISSING), new.get(sub, _MISSING)
                if a != b:
                    rows.append(f"  {label} {sub}: {_shown(a)} in {source}, {_shown(b)} {where}")
        else:
            rows.append(f"  {label}: {_shown(old)} in {source}, {_shown(new)} {where}")
    return rows


def check(
    path: str,
    now: dict,
    what: str,
    instead: str,
    overwrite: bool = False,
    command: str | None = None,
    view=None,
    **compare,
) -> dict | None:
    """Compares this run's manifest `now` with the one recorded at `path`.

    Returns the recorded manifest (None when there is none): the same run's, or with `overwrite`
    another run's. Otherwise another run's raises SettingsMismatchError naming `what` the folder
    holds and every difference (`compare`: as for `differences`), then `instead` (what the user
    can do). A manifest recorded by another `command` is refused even with `overwrite`: that
    folder is not this command's. `view` (dict -> dict), when given, is what is compared of each
    side. Writes nothing."""
    recorded = read(path)
    if recorded is None:
        return None
    before = recorded
    if command is not None and before.get(COMMAND) != command:
        raise SettingsMismatchError(
            f"{path} records the settings of another command's run, not {command}'s; running "
            "there would mix two runs' files: choose another output folder"
        )
    if view is not None:
        before, now = view(before), view(now)
    rows = differences(before, now, path, **compare)
    if not rows or overwrite:
        return recorded
    raise SettingsMismatchError(
        f"{what} made with other settings; {len(rows)} differ:\n" + "\n".join(rows) + f"\n{instead}"
    )
