"""echostream-train: fairseq-train with its settings from a YAML file (configs/train_*.yaml).

    echostream-train --config configs/train_mini.yaml DATA [more fairseq-train flags]

The file's ``train`` section holds fairseq-train flags with ``_`` for ``-`` (``max_tokens: 20000``
is ``--max-tokens 20000``); ``true`` adds a switch, ``false`` leaves it out, a list gives several
values. Flags on the command line come after the file's, so they override its values (a switch
the file turns on stays on). A key that fairseq-train does not know, or a value it rejects, is an
error that names the file and the key. ``--dry-run`` prints the fairseq-train command. A run whose
checkpoint_last.pt has reached --max-update already is left as it is.
"""
from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Tuple


def config_argv(path: Path) -> Tuple[List[str], Dict[str, str]]:
    """(fairseq-train flags, {flag: 'train.key'}) from the ``train`` section of ``path``."""
    from ..config import ConfigError, load_yaml

    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) - {"train"}:
        extra = sorted(set(data) - {"train"}) if isinstance(data, dict) else [type(data).__name__]
        raise ConfigError(f"{path}: a training config holds one section, 'train' (found {', '.join(map(str, extra))})")
    argv, flags = [], {}
    for key, value in (data.get("train") or {}).items():
        flag = "--" + str(key).replace("_", "-")
        flags[flag] = f"train.{key}"
        if isinstance(value, dict) or value is None:
            raise ConfigError(f"{path}: train.{key}: expected a value, true/false or a list, got {value!r}")
        if value is True:
            argv.append(flag)
        elif value is False:
            continue
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv, flags


def check(path: Path, argv: List[str], flags: Dict[str, str]) -> argparse.Namespace:
    """fairseq-train's own parser over ``argv`` (its parsed flags are returned); what it rejects
    is named by file and key."""
    from fairseq import options

    from ..config import ConfigError

    parser = options.get_training_parser()
    parser.exit_on_error = False
    try:
        known, extra = options.parse_args_and_arch(parser, argv, parse_known=True)
    except argparse.ArgumentError as e:
        where = flags.get(e.argument_name or "", e.argument_name or "the command line")
        raise ConfigError(f"{path}: {where}: {e.message}") from None
    unknown = [x.split("=")[0] for x in extra if x.startswith("--")]
    if unknown:
        known = [a for act in parser._actions for a in act.option_strings]
        msgs = []
        for flag in unknown:
            close = difflib.get_close_matches(flag, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            msgs.append(f"{flags.get(flag, flag + ' on the command line')}: fairseq-train has no {flag}{hint}")
        raise ConfigError(f"{path}: " + "; ".join(msgs))
    return known


def trained_updates(save_dir: Path) -> int:
    """Updates done by the run in ``save_dir`` (its checkpoint_last.pt), 0 when there is none."""
    import torch

    last = Path(save_dir) / "checkpoint_last.pt"
    if not last.is_file():
        return 0
    state = torch.load(last, map_location="cpu", weights_only=False)
    return int((state.get("optimizer_history") or [{}])[-1].get("num_updates", 0))


def main(argv=None):
    from ..config import ConfigError

    p = argparse.ArgumentParser(prog="echostream-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help="training settings (configs/train_*.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the fairseq-train command and exit")
    args, rest = p.parse_known_args(argv)
    try:
        file_argv, flags = config_argv(args.config)
        full = file_argv + rest
        known = check(args.config, full, flags)
    except ConfigError as e:
        p.error(str(e))
    if args.dry_run:
        print(shlex.join(["fairseq-train", *full]))
        return
    done = trained_updates(Path(known.save_dir))
    if known.max_update and done >= known.max_update:
        # fairseq-train would still take one more step before it checks
        print(f"{known.save_dir}/checkpoint_last.pt is at {done} updates (--max-update {known.max_update}): nothing to train")
        return
    from fairseq_cli import train

    sys.argv = ["fairseq-train", *full]
    train.cli_main()


if __name__ == "__main__":
    main()
