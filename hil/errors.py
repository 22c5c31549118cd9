"""Error hierarchy. Every error a user can fix is a `HilError` whose message names the fix."""

from __future__ import annotations


class HilError(Exception):
    """Base class for errors the CLI reports as one red line (exit code 1)."""


class ConfigError(HilError, ValueError):
    """Invalid configuration value: a σ, a TOML key, a CLI flag."""


class UnknownNameError(HilError, KeyError):
    """A registry lookup (model, dataset, backend) found no such name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BackendUnavailableError(HilError, RuntimeError):
    """The requested backend cannot run on this machine (e.g. no CUDA)."""


class SiteError(HilError, ValueError):
    """A noise site selector does not match the model's sites, or the forward changed."""


class DataError(HilError, OSError):
    """Dataset files are missing or malformed."""


class CheckpointError(HilError, OSError):
    """A checkpoint is missing, malformed, of a newer format, or does not fit the model."""

    def __str__(self) -> str:  # OSError formats errno tuples otherwise
        return str(self.args[0]) if self.args else ""


class ModelError(HilError, ValueError):
    """A model cannot be built for the requested input shape or options."""


class DeviceError(HilError):
    """The device cannot be reached, stopped answering, or answered something unusable."""


class FrameError(HilError):
    """A received AMVM/1 frame is malformed (bad COBS, CRC, length or version)."""


class StoreError(HilError):
    """A results store cannot be opened, read or written (wrong file, newer schema, locked, unknown experiment)."""


class StudyError(HilError):
    """Some points of a study failed on every try; they are recorded as failed and a rerun retries them."""
