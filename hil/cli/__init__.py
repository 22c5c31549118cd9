"""The ``hil`` command line: one module per verb group, thin over the library.

`console` holds the one pair of consoles and the JSON emitter, `options` the shared flags and
their parsers, `progress` the progress bars; `main` joins the verbs into one typer app.
"""

from hil.cli.main import app, main

__all__ = ["app", "main"]
