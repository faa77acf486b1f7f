"""Command-line entry points (installed as console scripts, see setup.py)."""


def add_run_args(group) -> None:
    """The options every trainer here shares: seed, CPU threads, progress bar."""
    group.add_argument("--seed", type=int, default=1)
    group.add_argument("--threads", type=int, help="torch CPU threads")
    group.add_argument("--no-progress-bar", action="store_true")


def start_run(args) -> None:
    """Log lines in fairseq's format on stderr, and the torch thread count asked for."""
    import logging
    import sys

    import torch

    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr, force=True)
    if args.threads:
        torch.set_num_threads(args.threads)
