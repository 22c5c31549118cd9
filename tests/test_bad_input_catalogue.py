"""The bad-input catalogue: every verb, given what a careless user or a damaged file gives it.

Each case runs one ``hil`` command line in a fresh folder holding a trained checkpoint, a results store, a
calibration profile and whatever damaged file the case needs, and asserts what the project promises for bad
input: exit code 1, exactly one ``error:`` line on stderr that names the fix, no traceback, nothing on
stdout, and no file changed, created or removed (SHA-256 and mtime of every file before and after).
Device cases run a real emulator process over TCP: unreachable addresses, and a device that dies mid-run
(the emulator's ``die_after`` fault: it answers N requests, then closes the link and stops serving) during
calibrate, evaluate, walk and train.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import error_line
from typer.testing import CliRunner

from hil.backends.device.emulator import EmulatorProcess
from hil.cli import app

OVERSIZED = 17 << 20  # one byte-range past every text-file limit (16 MiB); written sparse, so it is cheap


@dataclass(frozen=True)
class Case:
    """One command line and what its error line must say.

    ``argv`` may hold ``{ck}`` (a trained checkpoint), ``{store}`` (a walk folder with its results store),
    ``{profile}`` (a calibration profile), ``{tmp}`` (the case's folder) and ``{dying}`` (the TCP address of
    an emulator that dies after ``die_after`` replies). ``damage`` names a function of `DAMAGE` run first.
    ``writes`` is the one folder (relative to the case's) the command was asked to write and may have begun.
    """

    id: str
    argv: tuple[str, ...]
    says: tuple[str, ...]
    damage: str | None = None
    die_after: int = 0
    writes: str | None = None
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())


def _write(path: str, data: bytes | str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return damage


def _sparse(path: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        with (root / path).open("wb") as handle:
            handle.truncate(OVERSIZED)
    return damage


def _edit_json(path: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        data = json.loads((root / path).read_text())
        change(data)
        (root / path).write_text(json.dumps(data))
    return damage


def _store_version(root: Path) -> None:
    with sqlite3.connect(root / "w" / "results.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()


def _store_failure_tampered(root: Path) -> None:
    with sqlite3.connect(root / "w" / "results.sqlite") as conn:
        (experiment,) = conn.execute("SELECT id FROM experiments").fetchone()
        conn.execute("INSERT INTO failures VALUES (?, '1:fc1', 0.1, 0.0, 0, X'00ff', 'many', 'now')", (experiment,))
    conn.close()


def _profile_version(root: Path) -> None:
    profile = root / "p.toml"
    profile.write_text(profile.read_text().replace("version = 2", "version = 99", 1))


def _remove(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "meta-not-json": _write("ck/metadata.json", "{not json"),
    "meta-newer": _edit_json("ck/metadata.json", lambda d: d.update(format_version=99)),
    "meta-bad-field": _edit_json("ck/metadata.json", lambda d: d["model"].update(name=5)),
    "meta-oversized": _sparse("ck/metadata.json"),
    "weights-missing": _remove("ck/model.safetensors"),
    "weights-garbage": _write("ck/model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage" * 8),
    "config-not-toml": _write("c.toml", "epochs = ["),
    "config-unknown-key": _write("c.toml", "speed = 2\n"),
    "config-oversized": _sparse("c.toml"),
    "profile-not-toml": _write("p.toml", "version = \x00"),
    "profile-newer": _profile_version,
    "profile-oversized": _sparse("p.toml"),
    "store-garbage": _write("w/results.sqlite", b"not a database at all" * 100),
    "store-newer": _store_version,
    "store-failure-tampered": _store_failure_tampered,
    "snr-walk-garbage": _write("s/snr.json", '{"clean": "high", "layers": 3}'),
    "marginal-walk-garbage": _write("m/marginal.json", '{"executions": {"1:fc1": -2}}'),
    "marginal-walk-oversized": _sparse("m/marginal.json"),
    "recording-garbage": _write("r.hilrec", "this is not a recording\n"),
    "emulator-config-bad": _write("d.toml", "sigma_add = -1\n"),
    "emulator-config-not-toml": _write("d.toml", "sigma_add = = 1\n"),
    "empty-data-dir": lambda root: (root / "data").mkdir(),
    "out-is-file": _write("taken", "a file the user keeps"),
}

UNREACHABLE = "tcp:127.0.0.1:1"  # port 1: nothing listens there (connection refused at once)
TRAIN = ("train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--batch-size", "512")

CASES = [
    # --- the whole app
    Case("unknown-verb", ("trian",), ("No such command 'trian'", "Did you mean 'train'")),
    Case("unknown-root-flag", ("--bogus", "list"), ("No such option: --bogus", "hil --help")),
    # --- train
    Case("train-unknown-flag", (*TRAIN, "--bogus", "--out", "{tmp}/n"), ("No such option: --bogus", "--help")),
    Case("train-epochs-zero", (*TRAIN, "--epochs", "0", "--out", "{tmp}/n"), ("epochs must be",)),
    Case("train-lr-not-number", (*TRAIN, "--lr", "fast", "--out", "{tmp}/n"), ("'--lr'", "hil train --help")),
    Case("train-unknown-model", ("train", "--model", "resnet99", "--out", "{tmp}/n"), ("unknown model 'resnet99'",)),
    Case("train-unknown-dataset", ("train", "--dataset", "imagenet", "--out", "{tmp}/n"), ("unknown dataset",)),
    Case("train-negative-sigma", (*TRAIN, "--sigma-add", "-1", "--out", "{tmp}/n"), ("≥ 0",)),
    Case("train-unknown-site", (*TRAIN, "--sigma-add", "0.1", "--sites", "9:nowhere", "--out", "{tmp}/n"),
         ("9:nowhere",)),
    Case("train-bad-order", (*TRAIN, "--sigma-add", "0.1", "--sigma-mul", "0.1", "--order", "sideways", "--out",
                             "{tmp}/n"), ("sideways",)),
    Case("train-unknown-backend", (*TRAIN, "--backend", "warp", "--out", "{tmp}/n"), ("unknown backend 'warp'",)),
    Case("train-backend-option", (*TRAIN, "--backend", "sim#speed=3", "--out", "{tmp}/n"), ("no option speed",)),
    Case("train-unreachable-device", (*TRAIN, "--backend", f"device:{UNREACHABLE}", "--out", "{tmp}/n"),
         ("cannot connect",)),
    Case("train-config-missing", (*TRAIN, "--config", "{tmp}/absent.toml", "--out", "{tmp}/n"),
         ("does not exist", "--config")),
    Case("train-config-not-toml", (*TRAIN, "--config", "{tmp}/c.toml", "--out", "{tmp}/n"), ("not valid TOML",),
         damage="config-not-toml"),
    Case("train-config-unknown-key", (*TRAIN, "--config", "{tmp}/c.toml", "--out", "{tmp}/n"), ("speed",),
         damage="config-unknown-key"),
    Case("train-config-oversized", (*TRAIN, "--config", "{tmp}/c.toml", "--out", "{tmp}/n"), ("bytes, more than",),
         damage="config-oversized"),
    Case("train-out-is-file", (*TRAIN, "--out", "{tmp}/taken"), ("is a file",), damage="out-is-file"),
    Case("train-out-is-checkpoint", (*TRAIN, "--out", "{ck}"), ("--overwrite",)),
    Case("train-resume-not-json", ("train", "--resume", "{ck}", "--epochs", "2"), ("cannot read",),
         damage="meta-not-json"),
    Case("train-resume-newer", ("train", "--resume", "{ck}", "--epochs", "2"), ("newer", "upgrade"),
         damage="meta-newer"),
    Case("train-resume-no-weights", ("train", "--resume", "{ck}", "--epochs", "2"), ("model.safetensors",),
         damage="weights-missing"),
    Case("train-init-garbage-weights", (*TRAIN, "--init", "{ck}", "--out", "{tmp}/n"), ("cannot read weights",),
         damage="weights-garbage"),
    Case("train-calibration-not-toml", (*TRAIN, "--calibration", "{tmp}/p.toml", "--out", "{tmp}/n"),
         ("corrupt", "calibrate again"), damage="profile-not-toml"),
    Case("train-calibration-newer", (*TRAIN, "--calibration", "{tmp}/p.toml", "--out", "{tmp}/n"),
         ("newer",), damage="profile-newer"),
    Case("train-cifar-missing", ("train", "--dataset", "cifar10", "--model", "lenet5", "--data-dir", "{tmp}/data",
                                 "--out", "{tmp}/n"), ("cifar",), damage="empty-data-dir"),
    Case("train-device-dies", (*TRAIN, "--backend", "device:tcp:{dying}", "--out", "{tmp}/n"),
         ("link closed by the device", "rerun"), die_after=6),
    # --- evaluate
    Case("evaluate-missing-checkpoint", ("evaluate", "--checkpoint", "{tmp}/absent"), ("hil train --out",)),
    Case("evaluate-not-json", ("evaluate", "--checkpoint", "{ck}"), ("cannot read",), damage="meta-not-json"),
    Case("evaluate-newer", ("evaluate", "--checkpoint", "{ck}"), ("newer",), damage="meta-newer"),
    Case("evaluate-bad-field", ("evaluate", "--checkpoint", "{ck}"), ("model.name",), damage="meta-bad-field"),
    Case("evaluate-oversized-metadata", ("evaluate", "--checkpoint", "{ck}"), ("bytes, more than",),
         damage="meta-oversized"),
    Case("evaluate-garbage-weights", ("evaluate", "--checkpoint", "{ck}"), ("cannot read weights",),
         damage="weights-garbage"),
    Case("evaluate-sigma-not-number", ("evaluate", "--checkpoint", "{ck}", "--sigma-add", "lots"),
         ("'--sigma-add'",)),
    Case("evaluate-repeats-zero", ("evaluate", "--checkpoint", "{ck}", "--repeats", "0"), ("repeats",)),
    Case("evaluate-recording-garbage", ("evaluate", "--checkpoint", "{ck}", "--backend",
                                        "device:replay:{tmp}/r.hilrec"), ("recording",), damage="recording-garbage"),
    Case("evaluate-missing-serial", ("evaluate", "--checkpoint", "{ck}", "--backend",
                                     "device:serial:{tmp}/no-such-tty"), ("no-such-tty",)),
    Case("evaluate-unreachable-device", ("evaluate", "--checkpoint", "{ck}", "--backend", f"device:{UNREACHABLE}"),
         ("cannot connect",)),
    Case("evaluate-twin-corrupt-profile", ("evaluate", "--checkpoint", "{ck}", "--backend", "twin:{tmp}/p.toml"),
         ("corrupt",), damage="profile-not-toml"),
    Case("evaluate-twin-missing-profile", ("evaluate", "--checkpoint", "{ck}", "--backend", "twin:{tmp}/absent.toml"),
         ("hil calibrate",)),
    Case("evaluate-executor-alone", ("evaluate", "--checkpoint", "{ck}", "--executor", "ray"), ("--guided-reps",)),
    Case("evaluate-budget-zero", ("evaluate", "--checkpoint", "{ck}", "--sigma-add", "0.5", "--guided-reps",
                                  "{store}", "--budget", "0"), ("'--budget'",)),
    Case("evaluate-guided-store-garbage", ("evaluate", "--checkpoint", "{ck}", "--sigma-add", "0.5", "--guided-reps",
                                           "{store}", "--budget", "2"), ("not",), damage="store-garbage"),
    Case("evaluate-snr-walk-garbage", ("evaluate", "--checkpoint", "{ck}", "--compare-reps", "{tmp}/s", "--budget",
                                       "2", "--backend", "twin:{tmp}/p.toml"), ("cannot read the SNR walk",),
         damage="snr-walk-garbage"),
    Case("evaluate-marginal-walk-garbage", ("evaluate", "--checkpoint", "{ck}", "--compare-reps", "{tmp}/m",
                                            "--budget", "2", "--backend", "twin:{tmp}/p.toml"),
         ("cannot read the marginal walk", "rerun hil walk --marginal"), damage="marginal-walk-garbage"),
    Case("evaluate-marginal-walk-oversized", ("evaluate", "--checkpoint", "{ck}", "--compare-reps", "{tmp}/m",
                                              "--budget", "2", "--backend", "twin:{tmp}/p.toml"),
         ("marginal walk", "original file"), damage="marginal-walk-oversized"),
    Case("evaluate-device-dies", ("evaluate", "--checkpoint", "{ck}", "--backend", "device:tcp:{dying}",
                                  "--repeats", "3"), ("link closed by the device", "rerun"), die_after=8),
    # --- walk
    Case("walk-bad-grid", ("walk", "--checkpoint", "{ck}", "--sigmas", "abc", "--out", "{tmp}/n"), ("σ grid",)),
    Case("walk-no-checkpoint", ("walk", "--sigmas", "0.1,1", "--out", "{tmp}/n"), ("--checkpoint",)),
    Case("walk-repeats-not-int", ("walk", "--checkpoint", "{ck}", "--repeats", "x", "--out", "{tmp}/n"),
         ("'--repeats'",)),
    Case("walk-unknown-site", ("walk", "--checkpoint", "{ck}", "--sites", "9:nowhere", "--out", "{tmp}/n"),
         ("9:nowhere",)),
    Case("walk-unknown-noise", ("walk", "--checkpoint", "{ck}", "--noise", "pink", "--out", "{tmp}/n"), ("pink",)),
    Case("walk-unknown-executor", ("walk", "--checkpoint", "{ck}", "--executor", "warp", "--out", "{tmp}/n"),
         ("unknown executor 'warp'",)),
    Case("walk-store-garbage", ("walk", "--checkpoint", "{ck}", "--sites", "1:fc1", "--sigmas", "0.1,0.5,1,3", "--out",
                                "{store}"), ("not",), damage="store-garbage"),
    Case("walk-store-newer", ("walk", "--checkpoint", "{ck}", "--sites", "1:fc1", "--sigmas", "0.1,0.5,1,3", "--out",
                              "{store}"), ("newer hil", "upgrade"), damage="store-newer"),
    Case("walk-snr-on-sim", ("walk", "--checkpoint", "{ck}", "--snr", "--out", "{tmp}/n"), ("--profile",)),
    Case("walk-snr-corrupt-profile", ("walk", "--checkpoint", "{ck}", "--snr", "--backend", "twin:{tmp}/p.toml",
                                      "--out", "{tmp}/n"), ("corrupt",), damage="profile-not-toml"),
    Case("walk-marginal-on-sim", ("walk", "--checkpoint", "{ck}", "--marginal", "--out", "{tmp}/n"),
         ("device:ADDRESS or twin:PROFILE",)),
    Case("walk-marginal-zero-budget", ("walk", "--checkpoint", "{ck}", "--marginal", "--budget", "0", "--out",
                                       "{tmp}/n"), ("--budget",)),
    Case("walk-stale-checkpoint", ("walk", "--checkpoint", "{ck}", "--out", "{tmp}/n"), ("newer",),
         damage="meta-newer"),
    Case("walk-device-dies", ("walk", "--checkpoint", "{ck}", "--placement", "--backend", "device:tcp:{dying}",
                              "--out", "{tmp}/n"), ("link closed by the device", "rerun"), die_after=8, writes="n"),
    # --- report, results export, analyze
    Case("report-missing", ("report", "{tmp}/absent"), ("absent",)),
    Case("report-store-garbage", ("report", "{store}"), ("not",), damage="store-garbage"),
    Case("report-store-newer", ("report", "{store}"), ("newer hil",), damage="store-newer"),
    Case("report-failure-tampered", ("report", "{store}"), ("error and created must be strings",),
         damage="store-failure-tampered"),
    Case("report-unknown-experiment", ("report", "{store}", "--experiment", "999"), ("999",)),
    Case("export-store-garbage", ("results", "export", "{store}", "--csv", "{tmp}/out.csv"),
         ("not",), damage="store-garbage"),
    Case("export-no-format", ("results", "export", "{store}"), ("--csv",)),
    Case("binarization-newer", ("analyze", "binarization", "--checkpoint", "{ck}"), ("newer",), damage="meta-newer"),
    # --- harden, reproduce, demo, sites
    Case("harden-bad-bits", ("harden", "--bits", "x", "--out", "{tmp}/n"), ("bits",)),
    Case("harden-unknown-model", ("harden", "--model", "resnet99", "--out", "{tmp}/n"), ("resnet99",)),
    Case("reproduce-unknown", ("reproduce", "table99", "--out", "{tmp}/n"), ("table99",)),
    Case("reproduce-unknown-dataset", ("reproduce", "table3", "--dataset", "imagenet", "--out", "{tmp}/n"),
         ("imagenet",)),
    Case("reproduce-no-experiment", ("reproduce", "--out", "{tmp}/n"), ("--list",)),
    Case("demo-epochs-zero", ("demo", "--epochs", "0", "--out", "{tmp}/n"), ("epochs",)),
    Case("demo-out-is-file", ("demo", "--out", "{tmp}/taken"), ("taken",), damage="out-is-file"),
    Case("sites-unknown-model", ("sites", "--model", "resnet99"), ("unknown model 'resnet99'",)),
    # --- calibrate
    Case("calibrate-no-device", ("calibrate", "--out", "{tmp}/q.toml"), ("--device",)),
    Case("calibrate-unreachable", ("calibrate", "--device", UNREACHABLE, "--out", "{tmp}/q.toml"),
         ("cannot connect",)),
    Case("calibrate-few-samples", ("calibrate", "--device", "sim", "--samples", "10", "--out", "{tmp}/q.toml"),
         ("--samples",)),
    Case("calibrate-timeout-tiny", ("calibrate", "--device", "sim", "--timeout", "0", "--out", "{tmp}/q.toml"),
         ("'--timeout'",)),
    Case("calibrate-profile-exists", ("calibrate", "--device", "sim", "--out", "{profile}"), ("--overwrite",)),
    Case("calibrate-emulator-config-bad", ("calibrate", "--device", "sim", "--config", "{tmp}/d.toml", "--out",
                                           "{tmp}/q.toml"), ("sigma_add",), damage="emulator-config-bad"),
    Case("calibrate-device-dies", ("calibrate", "--device", "tcp:{dying}", "--out", "{tmp}/q.toml"),
         ("link closed by the device", "rerun"), die_after=20),
    Case("check-profile-corrupt", ("calibrate", "check", "--device", "sim", "--profile", "{tmp}/p.toml"),
         ("corrupt",), damage="profile-not-toml"),
    Case("check-profile-newer", ("calibrate", "check", "--device", "sim", "--profile", "{tmp}/p.toml"),
         ("newer",), damage="profile-newer"),
    Case("check-profile-oversized", ("calibrate", "check", "--device", "sim", "--profile", "{tmp}/p.toml"),
         ("bytes, more than",), damage="profile-oversized"),
    # --- device
    Case("info-unreachable", ("device", "info", "--device", UNREACHABLE), ("cannot connect",)),
    Case("info-unknown-transport", ("device", "info", "--device", "warp:x"), ("warp",)),
    Case("info-recording-garbage", ("device", "info", "--device", "replay:{tmp}/r.hilrec"), ("recording",),
         damage="recording-garbage"),
    Case("emulate-remote-bind", ("device", "emulate", "--tcp", "0.0.0.0:0"), ("--allow-remote",)),
    Case("emulate-no-port", ("device", "emulate",), ("--port pty or --tcp",)),
    Case("emulate-config-not-toml", ("device", "emulate", "--port", "pty", "--config", "{tmp}/d.toml"), ("TOML",),
         damage="emulator-config-not-toml"),
    Case("emulate-bad-fault", ("device", "emulate", "--port", "pty", "--faults", "drop=2"), ("[0, 1]",)),
    Case("emulate-bad-framing", ("device", "emulate", "--port", "pty", "--framing", "morse"), ("morse",)),
]


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and mtime of every file under ``root`` and every folder's presence, keyed by relative path.

    A folder's own mtime is left out: SQLite may create and remove a lock file beside a store it reads.
    """
    state: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_dir():
            state[key] = ("dir", 0)
        else:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            state[key] = (digest.hexdigest(), path.stat().st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained MLP (``ck``), a walk folder with its store (``w``) and a calibration profile (``p.toml``)."""
    root = tmp_path_factory.mktemp("catalogue")
    runner = CliRunner()
    for argv in ((*TRAIN, "--out", str(root / "ck")),
                 ("walk", "--checkpoint", str(root / "ck"), "--sites", "1:fc1", "--sigmas", "0.1,0.5,1,3", "--out",
                  str(root / "w")),
                 ("calibrate", "--device", "sim", "--samples", "2000", "--out", str(root / "p.toml"))):
        result = runner.invoke(app, list(argv))
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def dying(request: pytest.FixtureRequest) -> Iterator[str | None]:
    case: Case = request.node.callspec.params["case"]
    if not case.die_after:
        yield None
        return
    with EmulatorProcess("--tcp", "127.0.0.1:0", "--sigma-add", "0.05", "--faults",
                         f"die_after={case.die_after}") as emulator:
        yield emulator.address


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_is_one_line_exit_1_and_changes_no_file(case: Case, originals: Path, tmp_path: Path,
                                                          dying: str | None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ck", "w"):
        shutil.copytree(originals / name, tmp_path / name)
    shutil.copy2(originals / "p.toml", tmp_path / "p.toml")
    if case.damage is not None:
        DAMAGE[case.damage](tmp_path)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder either
    places = {"ck": tmp_path / "ck", "store": tmp_path / "w", "profile": tmp_path / "p.toml", "tmp": tmp_path,
              "dying": dying or ""}
    argv = [part.format(**places) for part in case.argv]
    before = _tree(tmp_path)
    result = CliRunner().invoke(app, argv)
    error_line(result, *case.says)
    after = _tree(tmp_path)
    if case.writes is not None:  # what it was asked to write; the points it finished are kept for the rerun
        after = {k: v for k, v in after.items() if k != case.writes and not k.startswith(case.writes + "/")}
    assert after == before, "the failed command changed, created or removed a file"


def test_the_catalogue_covers_every_verb_with_at_least_60_cases() -> None:
    verbs = {c.argv[0] if c.argv[0] not in ("results", "analyze", "device", "calibrate") else
             " ".join(c.argv[:2]) if c.argv[1] in ("export", "binarization", "info", "emulate", "check") else c.argv[0]
             for c in CASES}
    expected = {"train", "evaluate", "walk", "report", "results export", "analyze binarization", "harden",
                "reproduce", "demo", "sites", "calibrate", "calibrate check", "device info", "device emulate"}
    assert expected <= verbs, expected - verbs
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.argv[0] for c in CASES if c.die_after} >= {"train", "evaluate", "walk", "calibrate"}
    assert os.environ.get("HIL_DEBUG") != "1"  # a debug run would show tracebacks on purpose
