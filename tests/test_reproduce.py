"""`hil reproduce`: experiments listed, run with the paper's protocol, resumable, tables beside the papers'."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.reproduce import EXPERIMENTS, ReproContext, ReproTable, Row, paper_value, paper_values
from hil.reproduce.experiments import trained
from hil.reproduce.table import Check, write_table

runner = CliRunner()


def test_list_names_every_experiment() -> None:
    result = runner.invoke(app, ["reproduce", "--list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(EXPERIMENTS)
    assert "resnet-bn" in EXPERIMENTS


@pytest.mark.parametrize(("args", "fragment"), [
    (["reproduce", "table9"], "unknown experiment 'table9'; choose one of: table3, table4"),
    (["reproduce"], "name an experiment"),
    (["reproduce", "table3", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
])
def test_bad_requests_are_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_paper_values_are_unique_cells_with_their_table_and_row() -> None:
    values = paper_values()
    assert len(values) > 100
    cells = Counter((v.experiment, v.dataset, v.key) for v in values)
    assert max(cells.values()) == 1
    assert all(v.table and v.row and v.column and math.isfinite(v.value) for v in values)
    # Spot checks against the papers' text.
    assert paper_value("table3", "mnist5k", "mlp/no-bn/guided").value == 87.1
    assert paper_value("table4", "mnist", "mlp/no-bn/add/inference").value == 0.47
    assert paper_value("table4", "mnist5k", "mlp/no-bn/add/trained").value == 1.69
    assert paper_value("table4", "cifar10", "lenet5/bn/mul/trained").value == 0.629
    assert paper_value("weights", "mnist5k", "lenet5/bn/layer1").value == 51
    assert paper_value("hardening", "mnist5k", "lenet5/fp32/noisy-mu").value == 2.59
    # Table 3 reports LeNet-5 on CIFAR-10 only: a MNIST-like run still shows that row, naming its dataset.
    assert paper_value("table3", "mnist5k", "lenet5/bn/guided").dataset == "CIFAR-10"
    assert paper_value("table3", "mnist5k", "nothing") is None


def test_a_table_is_written_in_every_format(tmp_path: Path) -> None:
    table = ReproTable("table3", "title", "mnist5k", "protocol",
                       (Row("a", 1.0, 0.5, 1.5, paper_value("table3", "mnist5k", "mlp/bn/guided"), group="g"),
                        Row("b", math.nan, note="no μ: failed")),
                       (Check("claim", True, "evidence"),))
    paths = write_table(table, tmp_path)
    assert [p.name for p in paths] == ["table.md", "table.json", "table.csv", "table.png"]
    data = json.loads(paths[1].read_text())
    assert data["rows"][0]["paper"]["where"].startswith("002 Table 3, MNIST MLP with BN")
    assert data["rows"][1]["ours"] is None and "stand-in" in data["caveat"]
    text = paths[0].read_text()
    assert "| a | 1 | [0.5, 1.5] | 80.6 |" in text and "| claim | yes | evidence |" in text
    assert paths[3].stat().st_size > 1000


def test_networks_are_reused_only_with_the_same_settings(tmp_path: Path) -> None:
    context = ReproContext(out=tmp_path, dataset="digits", quick=True)
    first = trained(context, context.config("mlp", False))
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert trained(context, context.config("mlp", False)) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not trained again
    other = trained(context, context.config("mlp", True))
    assert other != first


def test_table3_quick_runs_resumes_and_reports_beside_the_paper(tmp_path: Path) -> None:
    args = ["reproduce", "table3", "--quick", "--dataset", "digits", "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.stdout)
    assert table["experiment"] == "table3" and table["dataset"] == "digits"
    rows = {row["quantity"]: row for row in table["rows"]}
    difference = rows["MLP without BN: guided − uniform (points)"]
    assert difference["paper"]["value"] == 18.9 and difference["low"] <= difference["ours"] <= difference["high"]
    assert {check["claim"] for check in table["checks"]} == {"MLP without BN: guided-1/μ beats uniform",
                                                               "MLP with BN: guided-1/μ beats uniform"}
    for name in ("table.md", "table.json", "table.csv", "table.png"):
        assert (tmp_path / "table3" / name).is_file()
    again = runner.invoke(app, args)  # everything stored: same numbers, nothing retrained
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)[0]["rows"] == table["rows"]
