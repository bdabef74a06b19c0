"""One source for every setting: a config dataclass field holds its default and its help, and the
command line's absl flags are generated from it (as transformers' HfArgumentParser does from its
dataclasses; absl stays, so --flagfile and every flag name keep working).

    learning_rate: float = setting(1e-5, "Peak learning rate (paper: 1e-5).")

    define_flags(FinetuningConfig)            # at import of the command line
    config = from_flags(FinetuningConfig)     # in its main(): every field from its flag

Every flag of every command line comes from such a field. A command's settings (what a run is,
recorded and compared on a rerun) are one dataclass; its other flags (where it runs, --overwrite)
are another, `<Command>Options`, so that they are never recorded with the run.

Field types map to flags: bool -> DEFINE_bool, int -> DEFINE_integer, float -> DEFINE_float,
str -> DEFINE_string (DEFINE_enum with `choices`), tuple[str, ...] -> DEFINE_list. A field without
a default is a required flag: `from_flags` names it when it is missing.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from absl import app, flags

# The flags define_flags defines belong to the command line that calls it (its --help lists them).
flags.disclaim_key_flags()


def setting(default=dataclasses.MISSING, help: str = "", choices=None):  # noqa: A002
    """A config field with its default, its help and (for an enum flag) its choices."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def _base(annotation):
    """int for `int | None`, and so on; the annotation itself otherwise."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


_DEFINE = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
}


def define_flags(cls, flag_values=flags.FLAGS, choices: dict | None = None, exclude=()) -> None:
    """Defines one flag per field of the dataclass `cls` (but those in `exclude`): its name,
    default and help. `choices` ({field: [values]}) makes a string flag an enum, for choices the
    config module should not import."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        kind = _base(hints[field.name])
        default = None if field.default is dataclasses.MISSING else field.default
        text = field.metadata.get("help") or field.name
        allowed = (choices or {}).get(field.name) or field.metadata.get("choices")
        if typing.get_origin(kind) is tuple:
            flags.DEFINE_list(
                field.name, list(default) if default else None, text, flag_values=flag_values
            )
        elif allowed:
            flags.DEFINE_enum(field.name, default, list(allowed), text, flag_values=flag_values)
        elif kind in _DEFINE:
            _DEFINE[kind](field.name, default, text, flag_values=flag_values)
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no flag type for {kind}")


def from_flags(cls, flag_values=flags.FLAGS, **overrides):
    """An instance of `cls` with every field read from its flag (`overrides` win; a field with
    no flag keeps its default). A required field whose flag was not given raises
    app.UsageError naming it."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            values[field.name] = overrides[field.name]
            continue
        if field.name not in flag_values and field.default is not dataclasses.MISSING:
            continue  # not a flag of this command line (define_flags' exclude): the default
        value = flag_values[field.name].value
        if typing.get_origin(_base(hints[field.name])) is tuple:
            value = tuple(value or ())
        if field.default is dataclasses.MISSING and value in (None, (), ""):
            raise app.UsageError(f"--{field.name} is required")
        values[field.name] = value
    return cls(**values)
