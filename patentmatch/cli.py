"""The ``patentmatch`` command: one entry point, one subcommand per job.

Each package contributes its subcommands through a ``register(subparsers)``
function in its ``cli`` module, listed in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from patentmatch.config import ConfigError, describe_settings, load_settings

logger = logging.getLogger(__name__)

COMMAND_MODULES = [
    "patentmatch.es_cli",
    "ingest.cli",
    "search_api.cli",
    "training.cli",
    "dashboard.cli",
    "search_api.workflow.cli",
]


def _print_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    for env_name, default, help_text in describe_settings():
        name = env_name.removeprefix("PATENTMATCH_").lower()
        print(f"{env_name}={getattr(settings, name)!s}")
        print(f"    default {default}: {help_text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patentmatch",
        description="Match technology demands to Korean patents.",
    )
    parser.add_argument("--config", help="TOML settings file (default: $PATENTMATCH_CONFIG "
                        "or ./patentmatch.toml when present)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v: debug)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="warnings and errors only; also hides progress bars")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config_parser = subparsers.add_parser("config", help="print every setting with its "
                                          "current value, default and meaning")
    config_parser.set_defaults(handler=_print_config)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        logger.error("invalid setting: %s", exc)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
