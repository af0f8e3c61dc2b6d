"""The `thumbnails` click group: commands found in the thumbnails.commands entry-point group
(pyproject.toml, read here as the independent source), `serve` without reading any, and
the client's settings from THUMBNAILS_* variables (click's CliRunner; no service runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from thumbnails.core import cli

ROOT = Path(__file__).resolve().parents[2]
# The projects that register commands: the service, the dev tools and the client, each in its
# own distribution (README, "Code map").
PYPROJECTS = [ROOT / "pyproject.toml", ROOT / "functions" / "local" / "pyproject.toml",
              ROOT / "functions" / "client" / "pyproject.toml"]


def registered() -> dict[str, str]:
    """name -> "module:attribute", as the three pyproject.toml files register the commands."""
    names: dict[str, str] = {}
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        names |= project.get("entry-points", {}).get(cli.COMMANDS_GROUP, {})
    return names


def test_every_registered_command_is_listed_and_loads() -> None:
    ctx = click.Context(cli.cli)
    names = registered()
    assert {"dev", "submit", "status", "list", "get", "delete", "watch"} <= set(names)
    assert cli.cli.list_commands(ctx) == sorted([*names, "serve"])
    for name, target in names.items():
        command = cli.cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        module, attribute = target.split(":")
        assert command is getattr(sys.modules[module], attribute)
        assert command.name == name
    assert cli.cli.get_command(ctx, "no-such-command") is None


def test_serve_is_found_without_metadata_or_client_code() -> None:
    probe = textwrap.dedent("""
        import importlib.metadata, json, sys
        def scanned(**kwargs):  # reading every distribution's entry points: ~9 ms of CPU
            raise AssertionError(f"entry points read: {kwargs}")
        importlib.metadata.entry_points = scanned
        import click
        from thumbnails.core.cli import cli
        command = cli.get_command(click.Context(cli), "serve")
        print(json.dumps([command.name] + [m for m in ("requests", "thumbnails.client.cli",
              "rich") if m in sys.modules]))
    """)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(run.stdout) == ["serve"]


def test_a_command_another_distribution_registers_is_found(tmp_path: Path) -> None:
    """A distribution of its own on sys.path (a dist-info with entry_points.txt, as pip
    installs one) adds a subcommand."""
    (tmp_path / "hello_tool.py").write_text(textwrap.dedent("""
        import click

        @click.command()
        @click.argument("name")
        def hello(name):
            '''Greet NAME.'''
            click.echo(f"hello {name}")
    """))
    info = tmp_path / "hello_tool-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-tool\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{cli.COMMANDS_GROUP}]\nhello = hello_tool:hello\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "thumbnails.core.cli", "hello", "world"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, "hello world\n"), run.stderr
    listing = subprocess.run([sys.executable, "-m", "thumbnails.core.cli", "--help"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert "  hello   Greet NAME." in listing.stdout and "  submit " in listing.stdout


def test_an_entry_point_that_is_not_a_command_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken_tool.py").write_text("hello = 'not a command'\n")
    info = tmp_path / "broken_tool-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-tool\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{cli.COMMANDS_GROUP}]\nhello = broken_tool:hello\n")
    run = subprocess.run([sys.executable, "-m", "thumbnails.core.cli", "hello"],
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "broken_tool:hello (thumbnails.commands) is not a click command" in run.stderr


@pytest.mark.parametrize(("args", "env", "message"), [
    (["list"], {"THUMBNAILS_STATUS_URL": "localhost:8081"}, "not an http(s) URL"),
    (["list", "--upload-url", "ftp://example.com"], {}, "not an http(s) URL"),
    (["list", "--limit", "0"], {}, "0 is not in the range x>=1"),
    (["submit", "a.png", "--quality", "101"], {}, "101 is not in the range 1<=x<=100"),
    (["submit", "a.png", "--width", "-3"], {}, "-3 is not in the range x>=1"),
    (["submit", "a.png", "--timeout", "0"], {}, "0.0 is not in the range x>0"),
    (["submit", "a.png", "--format", "gif"], {}, "'gif' is not one of"),
    (["submit", "a.png", "--rendition", "a:10:png"], {}, "not NAME:WxH:FORMAT[:FIT]"),
    (["watch", "--limit", "x"], {}, "'x' is not a valid integer"),
    (["serve", "thumbnail"], {}, "'thumbnail' is not one of 'upload', 'status', 'resize'"),
    (["dev", "--workers", "0"], {}, "0 is not in the range x>=1"),
])
def test_bad_arguments_are_usage_errors(args: list[str], env: dict[str, str],
                                        message: str) -> None:
    result = CliRunner().invoke(cli.cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_bad_setting_stops_serve_with_its_name() -> None:
    result = CliRunner().invoke(cli.cli, ["serve", "resize"], env={"MAX_PIXELS": "0"})
    assert result.exit_code == 2
    assert "configuration error: MAX_PIXELS: must be an integer of at least 1" in result.output


def test_format_jpg_and_any_case_are_the_apis_names() -> None:
    submit = cli.cli.get_command(click.Context(cli.cli), "submit")
    assert submit is not None
    (option,) = [p for p in submit.params if p.name == "format_"]
    for given, sent in (("jpg", "jpg"), ("JPEG", "jpeg"), ("webp", "webp")):
        assert option.type.convert(given, option, None) == sent
