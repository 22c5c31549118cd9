"""`hil --help` and the registries must not import torch (fast CLI start)."""

from __future__ import annotations

import subprocess
import sys


def test_cli_help_and_registries_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import hil, hil.backends, hil.models, hil.data\n"
        "from hil.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'train' in result.output and 'evaluate' in result.output\n"
        "print(sorted(m for m in ('torch', 'numpy', 'safetensors') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_public_api_resolves_lazily() -> None:
    import hil

    assert callable(hil.wrap) and callable(hil.create_model) and callable(hil.get_backend)
    assert hil.NoiseSpec(sigma_add=0.1).sigma_add == 0.1
    assert {"wrap", "NoiseSpec", "create_model", "get_backend", "train", "evaluate"} <= set(hil.__all__)
