"""``depthlab COMMAND ...``: one console command over the tools that already exist.

    depthlab run ARGS...          exactly ``python -m depthlab.run ARGS...`` (train, sweep)
    depthlab report ARGS...       exactly ``python -m depthlab.report ARGS...``
    depthlab compare A B [...]    one report over several sweeps, side by side
    depthlab studies [NAME]       the studies: question, anchor, expected times, command;
                                  with NAME, the files of that study

Every refusal is one line on stderr, ``error: ...``, with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from depthlab.console import listing

EXIT_USAGE = 2  # a refused command line, as depthlab.cli.EXIT_USAGE (not imported: it pulls torch)
PASSED_THROUGH = {"run": "depthlab.run", "report": "depthlab.report"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a refusal is one line (``error: ...; see PROG --help``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> OneLineParser:
    """The command line's parser: a subcommand each, with its own ``--help``."""
    parser = OneLineParser(
        prog="depthlab",
        description="Train and sweep deep MLPs, report on sweeps, and list the studies.",
        epilog="depthlab run ARGS is exactly python -m depthlab.run ARGS, the main line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, module in PASSED_THROUGH.items():
        commands.add_parser(
            name,
            add_help=False,  # --help goes on to the module, which knows its options
            help=f"python -m {module} ARGS... (see depthlab {name} --help)",
        )
    compare = commands.add_parser(
        "compare",
        help="one report over several sweeps, side by side",
        description="One HTML report over two or more sweep folders, side by side: "
        "python -m depthlab.report A B ... with the report's options (--out, --format).",
    )
    compare.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="two or more sweep folders")
    compare.add_argument("--out", help="the HTML file (default FIRST_SWEEP_DIR/compare.html)")
    compare.add_argument(
        "--format", choices=("png", "svg", "pdf"), help="figures, as for depthlab report"
    )
    studies = commands.add_parser(
        "studies",
        help="list the studies, or show one study's files",
        description="Without NAME: every study with its question, anchor paper, expected time "
        "of the quick and the full preset on a 2-core CPU, and the command that runs it. With "
        "NAME: that study's preset, module, analysis script, notebook, README and test.",
    )
    studies.add_argument("name", nargs="?", metavar="NAME", help="one study")
    studies.add_argument(
        "--markdown", action="store_true", help="the list as a Markdown table (for docs)"
    )
    return parser


def pass_through(module: str, args: Sequence[str]) -> NoReturn:
    """Become ``python -m MODULE ARGS...``: the same process image, arguments, exit status
    and signals as typing that line (Hydra reads sys.argv itself)."""
    command = [sys.executable, "-m", module, *args]
    sys.stdout.flush()
    if os.name == "posix":
        os.execv(sys.executable, command)
    sys.exit(subprocess.call(command))  # no exec that keeps the console elsewhere


def compare(argv: list[str]) -> int:
    """``depthlab compare A B ... [report options]``: the report over several sweeps; the
    arguments are the report's, checked by its own parser first (two folders at least)."""
    from depthlab.report import parser as report_parser

    parse = report_parser()
    parse.error = _refuse  # type: ignore[method-assign]  # one line, not argparse's usage
    sweeps = parse.parse_args(argv).sweep_dirs
    if len(sweeps) < 2:
        raise UsageError(f"compare needs two or more sweep folders, got {len(sweeps)}")
    pass_through(PASSED_THROUGH["report"], argv)


def _refuse(message: str) -> NoReturn:
    raise UsageError(message)


def studies(args: argparse.Namespace, rest: list[str]) -> int:
    """``depthlab studies [NAME]``: the list, or one study's files."""
    if rest:
        raise UsageError(f"unrecognized arguments: {' '.join(rest)}")
    if args.name is None:
        print(listing.studies_text(markdown=args.markdown))
        return 0
    from depthlab.errors import ConfigError

    try:
        print(listing.parts_text(args.name))
    except ConfigError as exc:  # the registry's: the name and the studies there are
        raise UsageError(str(exc)) from None
    return 0


class UsageError(Exception):
    """A command line that is refused: its message is the one line shown."""


HANDLERS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {"studies": studies}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``depthlab`` console command; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSED_THROUGH:
        pass_through(PASSED_THROUGH[argv[0]], argv[1:])
    parser = build_parser()
    if argv[:1] == ["compare"] and not {"-h", "--help"} & set(argv[1:]):
        try:
            return compare(argv[1:])
        except UsageError as exc:
            print(f"error: {exc}; see depthlab compare --help", file=sys.stderr)
            return EXIT_USAGE
    if argv and not argv[0].startswith("-") and argv[0] not in [*HANDLERS, "compare"]:
        allowed = ", ".join([*PASSED_THROUGH, "compare", *HANDLERS])
        parser.error(f"unknown command {argv[0]!r}; allowed: {allowed}")
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        parser.print_help()
        return EXIT_USAGE
    try:
        return HANDLERS[args.command](args, rest)
    except UsageError as exc:
        print(f"error: {exc}; see depthlab {args.command} --help", file=sys.stderr)
        return EXIT_USAGE
