"""The `thumbnails` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import Config, ConfigError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="thumbnails", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the whole service locally (Valkey, broker, functions)")
    dev.add_argument("--port", type=int, default=8080,
                     help="first port; the parts take consecutive ports (default 8080)")
    dev.add_argument("--data-dir", type=Path, default=Path("data"),
                     help="where Redis data and stored images live (default ./data)")
    dev.add_argument("--workers", type=int, default=2,
                     help="gunicorn workers for resize; the other functions get half (default 2)")
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from .devstack import run

    try:
        return run(config, args.port, args.data_dir, args.workers)
    except RuntimeError as exc:
        print(f"thumbnails dev: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
