"""``--config FILE``: a YAML file of the same settings as a CLI's flags (``configs/``).

The file holds sections (``model``, ``policy``, ``server``); each key is a flag of the command
with ``_`` for ``-`` (``lag_k: 1`` is ``--lag-k 1``). A flag ``--no-X`` may also be written
``X: true|false``, and a setting that a ``--no-...`` flag turns off may be ``null`` (``pause_ms:
null`` is ``--no-pause``). Flags given on the command line override the file. An unknown section
or key, a value of the wrong type or outside its choices, and a path that does not exist are
errors that name the file, the key and what is allowed.
"""
from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Dict, List, Optional

SECTIONS = ("model", "policy", "server")
# settings that a --no-... flag turns off: ``key: null`` sets that flag
OFF_FLAGS = {"pause_ms": "no_pause", "punct_delay": "no_punct"}
_SKIP = {"help", "config"}


def finite_nonnegative(value) -> bool:
    """Whether a setting's value is a number (not a bool) that is finite and >= 0."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < float("inf")


class ConfigError(ValueError):
    pass


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="YAML settings (see configs/); flags on the command line override the file")


def _actions(p: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    return {a.dest: a for a in p._actions if a.option_strings and a.dest not in _SKIP}


def _type_name(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "true or false"
    t = action.type
    name = {int: "an integer", float: "a number", Path: "a path", None: "a string", str: "a string"}.get(t, getattr(t, "__name__", "a value"))
    if action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction):
        return f"a list of {name}s" if name.startswith("a ") else f"a list ({name})"
    return name


def _convert(path: Path, key: str, value, action: argparse.Action):
    where = f"{path}: {key}"
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
    items = value if many else [value]
    if many and not isinstance(value, list):
        raise ConfigError(f"{where}: expected {_type_name(action)}, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, (dict, list)) or isinstance(v, bool) or v is None:
            raise ConfigError(f"{where}: expected {_type_name(action)}, got {v!r}")
        t = action.type or str
        try:
            if t is int and isinstance(v, float) and not v.is_integer():
                raise ValueError
            c = t(str(v)) if t in (str, Path) else t(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {_type_name(action)}, got {v!r}") from None
        if action.choices is not None and c not in action.choices:
            raise ConfigError(f"{where}: {c!r} is not one of {', '.join(map(str, action.choices))}")
        if t is Path:  # inputs: relative to the current folder, as on the command line
            if not c.exists():
                raise ConfigError(f"{where}: no such file or folder: {c}")
        out.append(c)
    return out if many else out[0]


def load_yaml(path: Path):
    """The parsed YAML of a ``--config`` file ({} when empty); a missing or malformed file is a
    ConfigError that names it."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


def read_config(path: Path, p: argparse.ArgumentParser, sections=SECTIONS) -> Dict[str, object]:
    """The parser defaults that ``path`` sets: {argparse dest: value}, validated. Sections that
    the command does not read (e.g. ``server`` for echostream-translate) are skipped."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected sections ({', '.join(SECTIONS)}) at the top, got {type(data).__name__}")
    actions = _actions(p)
    allowed = sorted(set(actions) | {d[3:] for d, a in actions.items() if d.startswith("no_") and a.nargs == 0}
                     | {k for k, flag in OFF_FLAGS.items() if flag in actions})
    values: Dict[str, object] = {}
    for section, body in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{path}: unknown section {section!r} (allowed: {', '.join(SECTIONS)})")
        if body is None or section not in sections:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: section {section!r} must hold key: value settings")
        for key, value in body.items():
            name = f"{section}.{key}"
            if key in OFF_FLAGS and value is None and OFF_FLAGS[key] in actions:
                values[OFF_FLAGS[key]] = True
            elif key in actions:
                if value is None and actions[key].default is None and actions[key].type in (None, str, Path):
                    values[key] = None  # an optional path or name left unset
                else:
                    values[key] = _convert(path, name, value, actions[key])
                if key in OFF_FLAGS and OFF_FLAGS[key] in actions:
                    values[OFF_FLAGS[key]] = False
            elif f"no_{key}" in actions and actions[f"no_{key}"].nargs == 0:
                if not isinstance(value, bool):
                    raise ConfigError(f"{path}: {name}: expected true or false, got {value!r}")
                values[f"no_{key}"] = not value
            else:
                close = difflib.get_close_matches(str(key), allowed, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"{path}: unknown key {name!r}{hint} (allowed: {', '.join(allowed)})")
    return values


def parse_args(p: argparse.ArgumentParser, argv: Optional[List[str]] = None, sections=SECTIONS) -> argparse.Namespace:
    """``p.parse_args(argv)`` with ``--config FILE`` read first: the file's values become the
    defaults, so flags on the command line override them. ``args.config_values`` holds what the
    file set."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    values = {}
    if known.config is not None:
        try:
            values = read_config(known.config, p, sections)
        except ConfigError as e:
            p.error(str(e))
        p.set_defaults(**values)
    args = p.parse_args(argv)
    args.config_values = values
    return args
