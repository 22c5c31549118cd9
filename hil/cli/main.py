"""The ``hil`` app: the error policy (one red line, exit 1; warnings one yellow line), the root options, the verbs.

Each verb lives in the module of its group and imports torch only inside its body, so
``hil --help`` stays fast.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from hil._version import __version__
from hil.cli.console import stderr, stdout
from hil.errors import HilError


def _debug_requested(ctx: typer.Context) -> bool:
    return (bool((ctx.obj or {}).get("debug")) or bool(ctx.params.get("debug"))  # params: before the root ran
            or os.environ.get("HIL_DEBUG") == "1")


def _one_line(message: str) -> NoReturn:
    stderr.print(Text(f"error: {' '.join(message.split())}", style="bold red"))
    raise typer.Exit(1)


def _warning_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Show a warning as one line on stderr (``--debug`` keeps Python's file:line form)."""
    stderr.print(Text(f"warning: {' '.join(str(message).split())}", style="yellow"))


@contextmanager
def _usage_errors_as_one_line() -> Iterator[None]:
    """A bad flag, value or sub-command as one line naming the help to read, exit 1 like every other error.

    A bare group (``hil device``) still shows its help (`NoArgsIsHelpError`).
    """
    try:
        yield
    except NoArgsIsHelpError:
        raise
    except ClickException as error:
        context = getattr(error, "ctx", None)
        where = context.command_path if context is not None else "hil"
        _one_line(f"{error.format_message()} (see {where} --help)")


class HilGroup(TyperGroup):
    """Reports `HilError` and usage errors as one red line and exit code 1 (``--debug``: full traceback)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        with _usage_errors_as_one_line():  # the root's own options are parsed here
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer's Context subclasses click's
        try:
            with _usage_errors_as_one_line(), warnings.catch_warnings():  # a sub-command's flags, an unknown one
                if not _debug_requested(ctx):
                    warnings.showwarning = _warning_line
                return super().invoke(ctx)
        except HilError as error:
            if _debug_requested(ctx):
                raise
            _one_line(str(error))


app = typer.Typer(
    cls=HilGroup,
    name="hil",
    help="Hardware-in-the-loop testbench for neural networks on noisy analog hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"hil {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="Print the version and exit.")] = None,
) -> None:
    """Hardware-in-the-loop testbench for neural networks on noisy analog hardware."""
    ctx.obj = {"debug": debug}


from hil.cli import calibrate, demo, device, doctor, evaluate, harden, inspect, reproduce, train, walk  # noqa: E402 - torch-free

app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("sites")(inspect.sites)
app.command("list")(inspect.list_registered)
app.command("walk")(walk.walk)
app.command("report")(walk.report)
app.add_typer(walk.results_app, name="results")
app.add_typer(walk.analyze_app, name="analyze")
app.add_typer(device.device_app, name="device")
app.add_typer(calibrate.calibrate_app, name="calibrate")
app.command("harden")(harden.harden)
app.command("demo")(demo.demo)
app.command("reproduce")(reproduce.reproduce)
app.command("doctor")(doctor.doctor)


def main() -> None:
    """Console entry point."""
    app(prog_name="hil")
