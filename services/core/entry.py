"""One way into every console script: `--config FILE`, loading, exit codes.

The daemons (runner.run) and the one-shot tools (chatmail-expire, chatmailctl)
share this: the same `--config` argument, the same one-line answer to a bad
file (`<prog>: <file>: <key.path>: <problem>` on stderr) and the same exit
status for it, 2, so scripts and systemd read every command the same way.
"""

import argparse
import os
import signal
import sys

from .config import ConfigError, load_config

EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments or a config file that cannot be used (argparse's own 2)


def tool_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser that already takes `--config FILE`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_argument(parser)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="chatmail.yaml (or a legacy chatmail.ini)")


def load_or_report(prog: str, path, err=None):
    """The loaded Config, or None after writing the one-line error to `err`."""
    try:
        return load_config(path)
    except ConfigError as e:
        (err or sys.stderr).write(f"{prog}: {e}\n")
        return None


def run_tool(prog: str, parser, argv, body, err=None) -> int:
    """Parse `argv`, load `--config`, then return `body(args, config)`'s status."""
    args = parser.parse_args(argv)
    config = load_or_report(prog, args.config, err)
    if config is None:
        return EXIT_USAGE
    return body(args, config)


def console(run):
    """A console-script `main(argv=None)` that exits with `run(argv)`'s status."""

    def main(argv=None) -> None:
        try:
            status = run(argv)
            sys.stdout.flush()  # buffered output meets a closed pipe here
        except BrokenPipeError:
            # The reader left (`chatmailctl ... | head`): stop quietly with the
            # status of a shell tool that SIGPIPE ended, and let nothing more
            # be written at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            status = 128 + signal.SIGPIPE
        sys.exit(status)

    return main
