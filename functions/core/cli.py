"""The `thumbnails` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import Config, ConfigError
from .serving import FUNCTIONS, serve


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else argv
    # `serve` is a container's entry point, on the cold start's path: its parser alone, as
    # the client commands import requests (about 100 ms before gunicorn even starts).
    serving = bool(argv) and argv[0] == "serve"
    if not serving:
        from . import clientcli
    parser = argparse.ArgumentParser(
        prog="thumbnails", description=__doc__,
        epilog=None if serving else f"client commands' {clientcli.EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the whole service locally (Valkey, broker, functions)")
    dev.add_argument("--port", type=int, default=8080,
                     help="first port; the parts take consecutive ports (default 8080)")
    dev.add_argument("--data-dir", type=Path, default=Path("data"),
                     help="where Redis data and stored images live (default ./data)")
    dev.add_argument("--workers", type=int, default=2,
                     help="gunicorn workers for resize; the other functions get half (default 2)")
    serve = sub.add_parser("serve", help="serve one function under gunicorn (a container's "
                                          "entry point; listens on $PORT, default 8080)")
    serve.add_argument("function", choices=FUNCTIONS)
    serve.add_argument("--host", default="0.0.0.0",
                       help="address to listen on (default all: a container's)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    serve.add_argument("--threads", type=int, default=4, help="threads per worker")
    serve.add_argument("--timeout", type=int, default=300,
                       help="seconds a request may take before its worker is restarted")
    if not serving:
        # Where the service is and the key to call it with are the client's settings, not
        # the service's: read here, at the process boundary, and never part of Config.
        clientcli.add_commands(sub, {field: os.environ.get(name, "")
                                     for field, name in clientcli.ENVIRONMENT.items()})
    args = parser.parse_args(argv)
    if not serving and args.command in clientcli.COMMANDS:
        return clientcli.run(args)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, config)
    from .devstack import run

    try:
        return run(config, args.port, args.data_dir, args.workers)
    except RuntimeError as exc:
        print(f"thumbnails dev: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace, config: Config) -> int:
    """gunicorn in this process (thumbnails.serving.serve): Python starts once, and
    Knative's signals reach gunicorn's master directly."""
    # Knative tells the container its port in PORT (a reserved name: never in Config).
    port = os.environ.get("PORT", "8080")
    serve(args.function, f"{args.host}:{port}", args.workers, args.threads, args.timeout,
          config.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
