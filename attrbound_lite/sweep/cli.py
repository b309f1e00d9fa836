"""The sweep's command line: ``attrbound sweep`` / ``attrbound report`` and ``python -m attrbound_lite.sweep``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._io import output_folder
from .report import report
from .runner import run_sweep

__all__ = ["add_subcommands", "cmd_sweep", "cmd_report", "main"]


def add_subcommands(subparsers) -> None:
    """Register ``sweep CONFIG --out DIR`` and ``report DIR`` on an argparse subparsers object.

    Args:
        subparsers: the result of ``ArgumentParser.add_subparsers``.
    """
    s = subparsers.add_parser("sweep", help="validate the bounds against PGD and IFIA over a YAML-described grid "
                              "(resumable; runs under torchrun)")
    s.add_argument("config", type=Path, help="the sweep's YAML file")
    s.add_argument("--out", required=True, type=output_folder, help="output folder (rerun the same command to resume)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    r = subparsers.add_parser("report", help="print the summary tables and the attack count of a sweep")
    r.add_argument("out", type=Path, metavar="DIR", help="a sweep's output folder")


def cmd_sweep(args: argparse.Namespace) -> int:
    """``attrbound sweep``: run (or resume) the sweep, then print its report (on rank 0).

    Args:
        args: ``config``, ``out``, ``no_progress``.

    Returns:
        The exit status, 0.
    """
    table = run_sweep(args.config, args.out, progress=not args.no_progress)
    if table is not None:
        report(args.out)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``attrbound report``: print the report of the sweep folder ``args.out``.

    Args:
        args: ``out``.

    Returns:
        The exit status, 0.
    """
    report(args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m attrbound_lite.sweep CONFIG --out DIR [--no-progress]`` (also under ``torchrun``).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 after an error (printed to stderr).
    """
    from . import __doc__ as doc

    parser = argparse.ArgumentParser(prog="python -m attrbound_lite.sweep", description=doc.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="the sweep's YAML file")
    parser.add_argument("--out", required=True, type=output_folder,
                        help="output folder (rerun the same command to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        return cmd_sweep(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"attrbound sweep: error: {err}", file=sys.stderr)
        return 2
