"""Google Speech Commands v2 as 1×10×49 MFCC features (MLPerf Tiny keyword spotting set-up).

Twelve classes: the ten words yes, no, up, down, left, right, on, off, stop, go, plus "silence"
(1 s crops of ``_background_noise_``) and "unknown" (the other words, subsampled to the size of
an average keyword class). The test split is ``testing_list.txt``; everything else trains.
Features: 16 kHz audio padded/cut to 1 s, 40 ms Hann windows every 20 ms (49 frames), |FFT|² on
1024 points, 40 mel filters from 20 Hz to 4 kHz, log, DCT-II, first 10 coefficients. numpy and
scipy only (no torchaudio). Features are cached beside the data as ``hil-mfcc-v2.npz``, keyed by
a fingerprint of the seed, the test list and every clip's name, size and modification time (a cache
made from other files, or unreadable, is rebuilt; pickled content is never loaded).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np

from hil.data import DEFAULT_PREPROCESS
from hil.data._dataset import Dataset, check_fixed, prepared
from hil.errors import DataError

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASSES = (*WORDS, "silence", "unknown")
SHAPE = (1, 10, 49)
RATE = 16_000
WINDOW, HOP, FFT, MELS, COEFFICIENTS = 640, 320, 1024, 40, 10
CACHE = "hil-mfcc-v2.npz"


@cache
def mel_filterbank(rate: int = RATE, fft: int = FFT, mels: int = MELS, low: float = 20.0,
                   high: float = 4000.0) -> np.ndarray:
    """Triangular mel filters, shape (mels, fft // 2 + 1)."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (mel / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(np.array(low)), to_mel(np.array(high)), mels + 2))
    bins = np.fft.rfftfreq(fft, 1.0 / rate)
    bank = np.zeros((mels, len(bins)))
    for m in range(mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - left) / (centre - left)
        falling = (right - bins) / (right - centre)
        bank[m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


def mfcc(audio: np.ndarray) -> np.ndarray:
    """10×49 MFCCs of one clip (float samples in [-1, 1]; padded or cut to 1 s)."""
    from scipy.fft import dct

    clip = np.zeros(RATE)
    clip[:min(len(audio), RATE)] = audio[:RATE]
    frames = np.lib.stride_tricks.sliding_window_view(clip, WINDOW)[::HOP]  # (49, 640)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(WINDOW), n=FFT)) ** 2
    energies = np.log(spectrum @ mel_filterbank().T + 1e-6)
    return dct(energies, type=2, norm="ortho", axis=1)[:, :COEFFICIENTS].T  # (10, 49)


def _read_wav(path: Path) -> np.ndarray:
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable wav file ({error})") from None
    if rate != RATE:
        raise DataError(f"{path}: sample rate {rate} Hz; Speech Commands clips are {RATE} Hz")
    if data.ndim != 1:
        data = data[:, 0]
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float64) / np.iinfo(data.dtype).max
    return data.astype(np.float64)


def _features(root: Path, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    listed = root / "testing_list.txt"
    if not listed.is_file():
        raise DataError(f"dataset 'gsc': {root} has no testing_list.txt; point --data-dir at the extracted "
                        f"speech_commands_v0.02 folder")
    test_set = {line.strip() for line in listed.read_text().splitlines() if line.strip()}
    rng = np.random.default_rng(seed)
    items: list[tuple[str, int]] = []
    unknown: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        files = sorted(f"{folder.name}/{w.name}" for w in folder.glob("*.wav"))
        if folder.name in WORDS:
            items += [(f, CLASSES.index(folder.name)) for f in files]
        else:
            unknown += files
    if not items:
        raise DataError(f"dataset 'gsc': {root} has no keyword folders ({', '.join(WORDS)}) with wav files")
    per_class = max(1, len(items) // len(WORDS))
    chosen: list[int] = [int(i) for i in rng.permutation(len(unknown))[:per_class]] if unknown else []
    items += [(unknown[i], CLASSES.index("unknown")) for i in sorted(chosen)]
    features, labels, is_test = [], [], []
    for relative, label in items:
        features.append(mfcc(_read_wav(root / relative)))
        labels.append(label)
        is_test.append(relative in test_set)
    noise_files = sorted((root / "_background_noise_").glob("*.wav")) if (root / "_background_noise_").is_dir() else []
    silence = CLASSES.index("silence")
    for index in range(per_class if noise_files else 0):
        audio = _read_wav(noise_files[index % len(noise_files)])
        start = int(rng.integers(0, max(1, len(audio) - RATE)))
        features.append(mfcc(audio[start:start + RATE] * rng.uniform(0, 1)))
        labels.append(silence)
        is_test.append(index % 10 == 0)  # a tenth of the silence clips tests
    x = np.stack(features)[:, None].astype(np.float32)
    y, test = np.array(labels, dtype=np.int64), np.array(is_test)
    if test.all() or not test.any():
        raise DataError(f"dataset 'gsc': testing_list.txt in {root} leaves no {'train' if test.all() else 'test'} "
                        f"clips")
    return x[~test], y[~test], x[test], y[test]


def _fingerprint(root: Path, seed: int) -> str:
    """What the cached features were computed from: the seed, the test list and every clip's name, size and time."""
    import hashlib

    digest = hashlib.sha256(f"{CACHE} seed={seed}\n".encode())
    listed = root / "testing_list.txt"
    if listed.is_file():
        digest.update(listed.read_bytes())
    for path in sorted(root.glob("*/*.wav")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cached(cache_file: Path, fingerprint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The cached (train_x, train_y, test_x, test_y) when the cache was made from these very files, else None.

    A cache that is unreadable, holds objects (pickles are never loaded), lacks an array or was made from
    other files is ignored and rebuilt.
    """
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as cached:
            if str(cached["fingerprint"]) != fingerprint:
                return None
            arrays = (np.asarray(cached["train_x"]), np.asarray(cached["train_y"]), np.asarray(cached["test_x"]),
                      np.asarray(cached["test_y"]))
    except (OSError, ValueError, KeyError, EOFError, MemoryError):
        return None
    if any(a.dtype == object for a in arrays):
        return None
    return arrays


def load_gsc(*, data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
             input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
             preprocess: str = DEFAULT_PREPROCESS) -> Dataset:
    """Speech Commands v2 keyword spotting, 12 classes, 1×10×49 MFCC inputs (see module docstring).

    ``preprocess``: ``paper`` feeds the MFCCs as they are (the paper's only preprocessing);
    ``standard`` standardises them to mean 0 / std 1.

    Raises:
        DataError: Missing folder, lists or clips; unreadable wav files.
        ConfigError: ``input_shape``/``num_classes`` differ from (1, 10, 49)/12.
    """
    check_fixed("gsc", SHAPE, len(CLASSES), input_shape, num_classes)
    if data_dir is None:
        raise DataError("dataset 'gsc' needs --data-dir PATH pointing at the extracted speech_commands_v0.02 "
                        "folder (hil does not download datasets)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset 'gsc': data folder {root} does not exist")
    cache_file = root / CACHE
    fingerprint = _fingerprint(root, seed)
    cached = _cached(cache_file, fingerprint)
    if cached is not None:
        return prepared("gsc", *cached, len(CLASSES), preprocess=preprocess, full_scale=None)
    train_x, train_y, test_x, test_y = _features(root, seed)
    try:
        np.savez(cache_file, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                 fingerprint=np.array(fingerprint))
    except OSError:
        pass  # a read-only data folder only loses the cache
    return prepared("gsc", train_x, train_y, test_x, test_y, len(CLASSES), preprocess=preprocess, full_scale=None)
