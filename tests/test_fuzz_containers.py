"""Fuzzed containers: damaged MP4 / WebM / MKV files end with a named reason, never a traceback.

Small valid files are mutated (bit flips, zeroed / duplicated / shuffled chunks, truncation,
header damage; see ``fuzz_containers``) and read by the video reader (index + every frame + a
seeking read), then, in batches with a valid file, by ``detect`` and by ``preprocess``. Every file
must end either scored or with a reason code of :data:`forensight.reasons.REASONS` other than
``error``; no traceback may be logged; no file may take more than :data:`PER_FILE_S` CPU seconds
(a hang); the valid file of each batch is still scored.

Budget: a fixed, derandomised budget in the suite (about 15 s on an idle 2-core machine). ``make
fuzz`` runs the nightly size (``FORENSIGHT_FUZZ=nightly``: random seeds, thousands of mutations;
``FORENSIGHT_FUZZ_READER`` / ``FORENSIGHT_FUZZ_PIPELINE`` override the counts).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import moving_face_frames
from fuzz_containers import CONTAINERS, MUTATIONS, encode, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensight.config import PreprocessConfig
from forensight.detect import ForensightDetector, load_detector
from forensight.modelfile import save_model_file
from forensight.models.registry import build_model, get_model_config
from forensight.preprocess import run_preprocess
from forensight.reasons import REASONS
from forensight.records import PreprocessError, VideoRecord
from forensight.video import index_video, read_frames

NIGHTLY = os.environ.get("FORENSIGHT_FUZZ", "") == "nightly"
READER_EXAMPLES = int(os.environ.get("FORENSIGHT_FUZZ_READER", "5000" if NIGHTLY else "60"))
PIPELINE_EXAMPLES = int(os.environ.get("FORENSIGHT_FUZZ_PIPELINE", "300" if NIGHTLY else "2"))
#: CPU seconds any one file may take before it counts as a hang (a valid file takes about 1).
PER_FILE_S = 30.0
#: Wall-clock allowance, as a multiple of the CPU allowance (a starved process on a shared machine).
WALL_FACTOR = 20.0

PP = PreprocessConfig(num_frames=4, regions=("full",), size=64)
FUZZ_SETTINGS: dict[str, Any] = {"deadline": None, "database": None, "derandomize": not NIGHTLY,
                                 "suppress_health_check": list(HealthCheck)}
SUFFIXES = st.sampled_from(sorted(CONTAINERS))
#: Outcome counts per stage ("reader", "detect", "preprocess") -> outcome ("ok" or a reason) -> files;
#: written as JSON to ``FORENSIGHT_FUZZ_STATS`` (a path) at the end of the module, for the record.
OUTCOMES: dict[str, Counter[str]] = {"reader": Counter(), "detect": Counter(), "preprocess": Counter()}


@pytest.fixture(scope="module", autouse=True)
def _outcome_record() -> Iterator[None]:
    yield
    out = os.environ.get("FORENSIGHT_FUZZ_STATS")
    if out:
        Path(out).write_text(json.dumps({k: dict(v) for k, v in OUTCOMES.items()}, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The valid files: 24 frames of a face, 160x128, a keyframe every 4 frames, one per container."""
    d = tmp_path_factory.mktemp("fuzz-src")
    frames = moving_face_frames(24, size=(160, 128))
    return {s: encode(d / f"valid{s}", frames).read_bytes() for s in CONTAINERS}


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> ForensightDetector:
    mc = get_model_config("region_tiny_attention")
    path = tmp_path_factory.mktemp("fuzz-model") / "model.pt"
    save_model_file(path, build_model(mc, pretrained=False), mc, PP, train_cfg=None, threshold=0.0,
                    val_metrics={"auc": 0.5})
    return load_detector(path, device="cpu")


def _within(cpu_s: float, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` run in a thread; a test failure naming ``what`` if it hangs.

    A hang is measured in CPU seconds of this process (more than ``cpu_s``), so a machine shared
    with other work (slower wall clock) is not taken for a hang; a wait that uses no CPU counts
    after ``WALL_FACTOR * cpu_s`` seconds of wall time.
    """
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    th = threading.Thread(target=run, daemon=True)
    cpu0, wall0 = time.process_time(), time.monotonic()
    th.start()
    while th.is_alive():
        th.join(0.25)
        if time.process_time() - cpu0 > cpu_s:
            pytest.fail(f"hang: {what} used more than {cpu_s:.0f} CPU seconds")
        if time.monotonic() - wall0 > WALL_FACTOR * cpu_s:
            pytest.fail(f"hang: {what} did not finish within {WALL_FACTOR * cpu_s:.0f} s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


class _Tracebacks(logging.Handler):
    """Collects every log record that carries a traceback (``exc_info``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


def _named(reason: str, where: str) -> None:
    assert reason != "error", f"{where}: reason 'error' (an unexpected exception leaked)"
    assert reason in REASONS, f"{where}: reason {reason!r} is not in the documented list"


def _read_everything(path: Path) -> None:
    """What the reader does with a file: index it, decode every frame, then a seeking sparse read."""
    idx = index_video(path, max_side=4096)
    n = idx.info.num_frames
    read_frames(path, np.arange(n), index=idx)
    read_frames(path, np.unique(np.linspace(0, n - 1, 4).astype(np.int64)), index=idx, min_seek_gap=1)


@pytest.mark.timeout(0 if NIGHTLY else 600)
@settings(max_examples=READER_EXAMPLES, **FUZZ_SETTINGS)
@given(suffix=SUFFIXES, ops=MUTATIONS)
def test_the_reader_ends_every_damaged_file_with_a_named_reason(sources: dict[str, bytes], tmp_path_factory:
                                                                 pytest.TempPathFactory, suffix: str,
                                                                 ops: list[tuple]) -> None:
    path = tmp_path_factory.mktemp("fuzz-read") / f"damaged{suffix}"
    path.write_bytes(mutate(sources[suffix], ops))
    try:
        _within(PER_FILE_S, f"reading {suffix} mutated by {ops}", lambda: _read_everything(path))
    except PreprocessError as e:
        _named(e.reason, f"{suffix} mutated by {ops}")
        OUTCOMES["reader"][e.reason] += 1
    else:
        OUTCOMES["reader"]["ok"] += 1


@pytest.mark.slow
@pytest.mark.timeout(0 if NIGHTLY else 600)
@settings(max_examples=PIPELINE_EXAMPLES, **FUZZ_SETTINGS)
@given(batch=st.lists(st.tuples(SUFFIXES, MUTATIONS), min_size=2, max_size=2))
def test_detect_and_preprocess_name_every_damaged_file_and_score_the_valid_one(
        sources: dict[str, bytes], detector: ForensightDetector, tmp_path_factory: pytest.TempPathFactory,
        batch: list[tuple[str, list[tuple]]]) -> None:
    folder = tmp_path_factory.mktemp("fuzz-batch")
    (folder / "valid.mp4").write_bytes(sources[".mp4"])
    made = {"valid.mp4": "valid"}
    for i, (suffix, ops) in enumerate(batch):
        (folder / f"damaged{i}{suffix}").write_bytes(mutate(sources[suffix], ops))
        made[f"damaged{i}{suffix}"] = f"{suffix} mutated by {ops}"
    catcher = _Tracebacks()
    logging.getLogger().addHandler(catcher)
    try:
        results = _within(PER_FILE_S * len(made), "detect on the batch", lambda: detector.predict_many(
            [folder], progress=False))
        records = [VideoRecord(path=folder / name, label=0, split="test", dataset="fuzz", method="m",
                               compression="raw", name=Path(name).stem) for name in sorted(made)]
        summary = _within(PER_FILE_S * len(made), "preprocess on the batch", lambda: run_preprocess(
            records, folder.parent / f"{folder.name}-cache", PP, progress=False))
    finally:
        logging.getLogger().removeHandler(catcher)
    assert not catcher.records, f"traceback logged for {made}: {catcher.records[0].getMessage()}"
    by_name = {r.name: r for r in results}
    assert set(by_name) == set(made)
    for name, r in by_name.items():
        if not r.ok:
            _named(r.reason, f"detect: {made[name]}: {r.message}")
    assert by_name["valid.mp4"].ok, by_name["valid.mp4"].message  # the batch went on past the damage
    assert summary.accounted == summary.total == len(made)
    for vid, (reason, msg) in summary.failures.items():
        _named(reason, f"preprocess: {vid}: {msg}")
    OUTCOMES["detect"].update(r.reason or "ok" for name, r in by_name.items() if name != "valid.mp4")
    OUTCOMES["preprocess"].update([reason for vid, (reason, _) in summary.failures.items()] +
                                  ["ok"] * (summary.done - 1))
    assert not any(vid.endswith("/valid") for vid in summary.failures)


# ---- the two leaks of the bug report, as fixed regressions ------------------------------------------

@pytest.mark.parametrize(("suffix", "codec_id"), [(".mkv", b"V_MPEG4/ISO/AVC"), (".webm", b"V_VP9")])
def test_a_stream_whose_codec_cannot_be_opened_is_unreadable_not_an_error(
        sources: dict[str, bytes], detector: ForensightDetector, tmp_path: Path, suffix: str,
        codec_id: bytes) -> None:
    """FFmpeg gives such a stream no codec context; reading its width was the AttributeError."""
    data = sources[suffix]
    assert data.count(codec_id) == 1
    path = tmp_path / f"codec{suffix}"
    path.write_bytes(data.replace(codec_id, b"V_" + b"Q" * (len(codec_id) - 2)))
    with pytest.raises(PreprocessError, match="codec cannot be opened") as err:
        index_video(path)
    assert err.value.reason == "unreadable"
    r = detector.predict(path)
    assert (r.status, r.reason) == ("failed", "unreadable") and "codec cannot be opened" in r.message


def test_a_refused_seek_decodes_through_to_the_same_frames(sources: dict[str, bytes], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged seek index makes FFmpeg refuse a seek: the reader then decodes forward (from the
    start, or through the gap) and gives exactly the frames a working seek gives."""
    import av

    from forensight import video

    path = tmp_path / "v.mp4"
    path.write_bytes(sources[".mp4"])
    idx = index_video(path)
    want = np.array([2, 9, 17, 23])
    good = read_frames(path, want, index=idx, min_seek_gap=1)

    class Refusing:
        def seek(self, *a: Any, **k: Any) -> None:
            raise av.error.PermissionError(1, "Operation not permitted")

    assert video._seek(Refusing(), 100, None) is False  # type: ignore[arg-type]
    monkeypatch.setattr(video, "_seek", lambda *a, **k: False)
    bad = read_frames(path, want, index=idx, min_seek_gap=1)
    np.testing.assert_array_equal(bad.indices, good.indices)
    np.testing.assert_array_equal(bad.frames, good.frames)
