"""The `thumbnails` command: a click group with the service's own `serve`, and the
subcommands each distribution registers in the `thumbnails.commands` entry-point group
(pyproject.toml [project.entry-points]): dev, submit, status..."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from . import serving
from .config import Config, ConfigError
from .serving import FUNCTIONS

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

COMMANDS_GROUP = "thumbnails.commands"  # entry-point group: name -> a click.Command


class EntryPointGroup(click.Group):
    """A click group whose commands are its own plus the entry points of COMMANDS_GROUP,
    each imported only when it runs (or when --help lists them).

    Its own commands are found without reading any distribution's metadata: `serve`, a
    container's entry point on the cold start's path, never scans the installed
    distributions' entry points (measured: about 9 ms of CPU for the first scan in a venv of
    76 distributions; importlib.metadata itself comes with gunicorn) and never imports the
    client commands (and requests)."""

    def _entry_points(self) -> dict[str, EntryPoint]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every registered command's name, sorted (click's help lists them so)."""
        return sorted({*super().list_commands(ctx), *self._entry_points()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named `cmd_name`, its module imported now; None if none is."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry_point = self._entry_points().get(cmd_name)
        if entry_point is None:
            return None
        loaded = entry_point.load()
        if not isinstance(loaded, click.Command):
            raise click.ClickException(f"entry point {entry_point.value} ({COMMANDS_GROUP}) "
                                       "is not a click command")
        return loaded


@click.group(cls=EntryPointGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Run the thumbnail service (serve, dev) or talk to one (submit, status, list, get,
    watch, delete)."""


class BadConfiguration(click.ClickException):
    """The service's environment is not a valid Config: exit status 2, as a usage error."""

    exit_code = 2


def service_config() -> Config:
    """Config.from_env(), or BadConfiguration naming the bad setting."""
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise BadConfiguration(f"configuration error: {exc}") from None


@cli.command()
@click.argument("function", type=click.Choice(FUNCTIONS))
@click.option("--host", default="0.0.0.0", show_default=True,
              help="address to listen on (all: a container's)")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="gunicorn worker processes")
@click.option("--threads", type=click.IntRange(min=1), default=4, show_default=True,
              help="threads per worker")
@click.option("--timeout", type=click.IntRange(min=1), default=300, show_default=True,
              help="seconds a request may take before its worker is restarted")
def serve(function: str, host: str, workers: int, threads: int, timeout: int) -> None:
    """Serve one function under gunicorn (a container's entry point; listens on $PORT,
    default 8080). gunicorn runs in this process (thumbnails.core.serving.serve): Python starts
    once, and Knative's signals reach gunicorn's master directly."""
    config = service_config()
    # Knative tells the container its port in PORT (a reserved name: never in Config).
    port = os.environ.get("PORT", "8080")
    serving.serve(function, f"{host}:{port}", workers, threads, timeout, config.log_level)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: its exit status."""
    try:
        cli.main(args=argv, prog_name="thumbnails", standalone_mode=True)
    except SystemExit as exc:  # click ends every run so; a message as code is a failure
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
