"""Command-line entry points (installed as console scripts, see setup.py)."""
