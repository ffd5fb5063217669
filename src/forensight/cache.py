"""On-disk cache of preprocessed videos, with a manifest.

Layout of a cache root::

    cache.json                 format version, the preprocessing config and its hash; with
                               pseudo-fakes, their settings (``pseudo_fakes``, see below)
    entries/<name>/            one directory per finished video; <name> = ``records.safe_name(id)``:
                               a readable stem + ``-`` + 10 hex digits of the SHA-256 of the
                               qualified id, so two ids never share an entry
    entries/.tmp-<pid>-<host>-<random>/   an entry being written by process <pid> on <host>
        meta.json              the VideoRecord, video info, stage timings, coverage
        indices.npy            int64 (T,)   sampled frame numbers
        timestamps.npy         float64 (T,) seconds
        boxes.npy              float32 (T, 4) smoothed face box, native pixels
        landmarks.npy          float32 (T, 68, 2) iBUG landmarks, native pixels
        observed.npy           bool (T,)   face detected in that frame (else interpolated)
        <region>.npy           uint8 (T, h, w, c) crops, one file per region
    failed/<name>.json         a video that could not be processed: reason + message
    manifest.csv               one row per processed video (rebuilt from the two folders)
    preprocess.log             one line per failure, appended

Every ``.npy`` opens with memory mapping (``np.load(mmap_mode="r")``), so a data loader reads
only the frames it needs. Entries are written into a temporary directory and renamed into
place: a killed run never leaves a half entry, and a rerun skips finished videos. Shards on
several machines may write into the same cache root; the manifest is derived from what is on
disk, so it is always consistent. A temporary directory is named after the process writing it,
and ``clean_partial`` removes only those whose process is dead (same host) or that are older than
a day (any host), never one that another shard is still writing. Every entry stores its
qualified id, and reading checks it: a load never returns another video's data. A cache made
with another preprocessing config is refused, and so is one made with an older format
(format 1 named entries without the id hash, so two ids could share one entry): preprocess again.

A cache with pseudo-fakes (``preprocess --pseudo-fakes``) records how they were made in
``cache.json`` under ``pseudo_fakes`` (kinds, per-video K, region, sparsity, per-frame, seed: the
:class:`forensight.pseudofake.PseudoFakeConfig` as a dict). They are provenance, not part of the
preprocessing config's hash (a model trained on the cache still matches it). Adding pseudo-fakes
with other settings to a cache that holds some is refused like a config mismatch
(:class:`PseudoFakeSettingsMismatch`, listing the differing settings), so one cache never mixes
pseudo-fakes made two ways. A cache made before this field was recorded stays readable
(``Cache.pseudo_fakes`` is None); its settings are then read from its pseudo-fake entries (each
entry's ``meta.json`` has them) when pseudo-fakes are added to it, and recorded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensight.config import PreprocessConfig
from forensight.io import atomic_write_text, guard_disk_full
from forensight.records import VideoRecord, safe_name

#: On-disk format. 2: entry names carry a hash of the qualified id (1 had none: ids that differ
#: only in characters outside ``[A-Za-z0-9._-]`` shared an entry); temporary directories are owned.
FORMAT_VERSION = 2
#: A temporary entry directory older than this (seconds since its last change) is stale whoever owns it.
STALE_TMP_AGE_S = 24 * 3600.0
_TMP_PREFIX = ".tmp-"
ARRAY_KEYS = ("indices", "timestamps", "boxes", "landmarks", "observed")
#: cache.json key of the pseudo-fake settings.
PSEUDO_KEY = "pseudo_fakes"
MANIFEST_FIELDS = ("video_id", "dataset", "method", "compression", "label", "split", "status", "reason",
                   "num_frames", "coverage", "path", "entry")


class CacheConfigMismatch(ValueError):
    """The cache on disk was made with a different preprocessing config."""


class PseudoFakeSettingsMismatch(CacheConfigMismatch):
    """The cache holds pseudo-fakes made with other settings than those asked."""


class CacheFormatError(ValueError):
    """The cache on disk was made with another on-disk format (``FORMAT_VERSION``)."""


class CacheEntryMismatch(ValueError):
    """An entry directory holds another video than the id it was looked up for."""


@dataclass
class CacheEntry:
    """One cached video; arrays are memory-mapped read-only.

    ``regions`` maps region name → uint8 (T, h, w, c). See the module docstring for the others.
    """

    video_id: str
    record: VideoRecord
    meta: dict[str, Any]
    indices: np.ndarray
    timestamps: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    observed: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable ``key: a != b`` lines for two config dicts."""
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class Cache:
    """A cache root on disk (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, config: PreprocessConfig,
                 pseudo_fakes: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.config = config
        #: how the cache's pseudo-fakes were made (cache.json ``pseudo_fakes``); None when it has none
        #: recorded (no pseudo-fakes, or a cache made before the settings were stored)
        self.pseudo_fakes: dict[str, Any] | None = None if pseudo_fakes is None else _plain(pseudo_fakes)
        self.entries_dir = self.root / "entries"
        self.failed_dir = self.root / "failed"

    # ---- opening -----------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: PreprocessConfig,
               pseudo_fakes: Mapping[str, Any] | None = None) -> Cache:
        """Open ``root`` for writing with ``config``; create it if new.

        Raises ``CacheConfigMismatch`` (listing the differing fields) if ``root`` holds a cache
        made with another config: caches are never mixed. ``pseudo_fakes``: the settings of the
        pseudo-fakes about to be written (``PseudoFakeConfig.to_dict()``), recorded in cache.json;
        :class:`PseudoFakeSettingsMismatch` if the cache holds pseudo-fakes made otherwise
        (:meth:`record_pseudo_fakes`).
        """
        root = Path(root)
        meta_path = root / "cache.json"
        if meta_path.exists():
            cache = cls.open(root)
            if cache.config.hash != config.hash:
                diff = "; ".join(config_diff(cache.config.to_dict(), config.to_dict()))
                raise CacheConfigMismatch(
                    f"{root} holds a cache made with another preprocessing config (hash "
                    f"{cache.config.hash}, asked {config.hash}; {diff}). Use another output folder.")
            if pseudo_fakes is not None:
                cache.record_pseudo_fakes(pseudo_fakes)
            return cache
        if root.exists() and any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise FileExistsError(f"{root} exists, is not empty and is not a forensight cache; "
                                  "choose an empty or new folder")
        root.mkdir(parents=True, exist_ok=True)
        (root / "entries").mkdir(exist_ok=True)
        (root / "failed").mkdir(exist_ok=True)
        header: dict[str, Any] = {"format": FORMAT_VERSION, "config_hash": config.hash, "preprocess": config.to_dict()}
        if pseudo_fakes is not None:
            header[PSEUDO_KEY] = _plain(pseudo_fakes)
        _write_header(root, header)
        return cls(root, config, pseudo_fakes)

    @classmethod
    def open(cls, root: str | Path, expect_hash: str | None = None) -> Cache:
        """Open an existing cache for reading. With ``expect_hash``, a config mismatch is an error."""
        root = Path(root)
        meta_path = root / "cache.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{root} is not a forensight cache (no cache.json); "
                                    "make one with `forensight preprocess`")
        meta = json.loads(meta_path.read_text())
        fmt = meta.get("format")
        if fmt != FORMAT_VERSION:
            if isinstance(fmt, int) and fmt < FORMAT_VERSION:
                raise CacheFormatError(
                    f"{root} was made with an older cache format ({fmt}; this version reads "
                    f"{FORMAT_VERSION}: "
                    "entry names now carry a hash of the video id, so ids such as 'clip 1' and 'clip-1' "
                    "no longer share an entry); preprocess the videos again into a new folder")
            raise CacheFormatError(f"{root}: cache format {fmt!r} is not supported (this version reads "
                                   f"{FORMAT_VERSION}); it was made by another forensight version")
        config = PreprocessConfig.from_dict(meta["preprocess"])
        if expect_hash is not None and config.hash != expect_hash:
            raise CacheConfigMismatch(
                f"{root} was preprocessed with config {config.hash}, but the model expects {expect_hash}: "
                "preprocess the videos again with the model's config (it is stored in the checkpoint)")
        return cls(root, config, meta.get(PSEUDO_KEY))

    def record_pseudo_fakes(self, settings: Mapping[str, Any]) -> None:
        """Record in cache.json that the cache's pseudo-fakes are made with ``settings``, or check it.

        The settings already known are those in cache.json, else (a cache made before they were
        recorded) those stored in its pseudo-fake entries. If they differ from ``settings`` (or the
        old entries themselves disagree), raises :class:`PseudoFakeSettingsMismatch` naming each
        differing setting, and nothing is written.
        """
        asked = _plain(settings)
        known = [self.pseudo_fakes] if self.pseudo_fakes is not None else self._pseudo_fakes_in_entries()
        if len(known) > 1:
            raise PseudoFakeSettingsMismatch(
                f"{self.root} already holds pseudo-fakes made with {len(known)} different settings "
                f"({'; '.join(json.dumps(k, sort_keys=True) for k in known)}): it cannot record one; "
                "make the pseudo-fakes again into a new output folder")
        if known and known[0] != asked:
            diff = "; ".join(config_diff(known[0], asked))
            raise PseudoFakeSettingsMismatch(
                f"{self.root} holds pseudo-fakes made with other settings (the cache's != asked: {diff}). "
                "One cache never mixes pseudo-fakes made two ways: rerun with the stored settings "
                "(to add videos or resume) or use another output folder.")
        if self.pseudo_fakes == asked:
            return
        meta = json.loads((self.root / "cache.json").read_text())
        _write_header(self.root, {**meta, PSEUDO_KEY: asked})
        self.pseudo_fakes = asked

    def _pseudo_fakes_in_entries(self) -> list[dict[str, Any]]:
        """The distinct pseudo-fake settings stored in the entries' meta.json (for older caches)."""
        found: list[dict[str, Any]] = []
        for meta_path in sorted(self.entries_dir.glob("*/meta.json")):
            conf = (json.loads(meta_path.read_text()).get("pseudo") or {}).get("config")
            if conf is not None and _plain(conf) not in found:
                found.append(_plain(conf))
        return found

    # ---- writing -----------------------------------------------------------------------------
    def entry_dir(self, video_id: str) -> Path:
        """The directory of ``video_id``'s entry (whether or not it exists)."""
        return self.entries_dir / safe_name(video_id)

    def failure_path(self, video_id: str) -> Path:
        """The failure record of ``video_id`` (whether or not it exists)."""
        return self.failed_dir / f"{safe_name(video_id)}.json"

    def is_done(self, video_id: str) -> bool:
        """True if ``video_id`` has a finished entry.

        Raises ``CacheEntryMismatch`` if its entry directory holds another video's id.
        """
        meta_path = self.entry_dir(video_id) / "meta.json"
        if not meta_path.is_file():
            return False
        self._check_stored_id(meta_path, json.loads(meta_path.read_text()).get("video_id"), video_id)
        return True

    def _check_stored_id(self, where: Path, stored: Any, video_id: str) -> None:
        if stored != video_id:
            raise CacheEntryMismatch(
                f"{where} holds video {stored!r}, not the requested {video_id!r}: the cache {self.root} "
                "is inconsistent (entry directories renamed or copied by hand?); preprocess again")

    def is_failed(self, video_id: str) -> bool:
        return self.failure_path(video_id).is_file()

    def write_entry(self, record: VideoRecord, arrays: dict[str, np.ndarray],
                    regions: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Atomically write one video's entry; returns its directory.

        ``arrays`` holds every key of ``ARRAY_KEYS``; ``regions`` maps region → uint8 array.
        If another process finished the same video first, its entry is kept. The temporary
        directory is ``.tmp-<pid>-<host>-<random>`` (see ``clean_partial``).
        """
        missing = [k for k in ARRAY_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"entry for {record.video_id} lacks arrays {missing}")
        final = self.entry_dir(record.video_id)
        # room: the arrays, plus a block per file for .npy headers and meta.json
        needed = (sum(np.asarray(a).nbytes for a in arrays.values()) + sum(a.nbytes for a in regions.values())
                  + 4096 * (len(arrays) + len(regions) + 2))
        tmp: Path | None = None

        def drop_tmp() -> None:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

        with guard_disk_full(final, f"cache entry for {record.video_id}", needed, cleanup=drop_tmp):
            tmp = Path(tempfile.mkdtemp(dir=self.entries_dir, prefix=temp_dir_prefix()))
            self._write_tmp_entry(tmp, final, record, arrays, regions, meta)
        self.failure_path(record.video_id).unlink(missing_ok=True)
        return final

    def _write_tmp_entry(self, tmp: Path, final: Path, record: VideoRecord, arrays: dict[str, np.ndarray],
                         regions: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Fill the temporary entry folder ``tmp`` and rename it to ``final`` (see :meth:`write_entry`);
        ``tmp`` is removed on any failure."""
        try:
            for k in ARRAY_KEYS:
                np.save(tmp / f"{k}.npy", np.ascontiguousarray(arrays[k]))
            for name, arr in regions.items():
                if arr.dtype != np.uint8:
                    raise ValueError(f"region {name} must be uint8, got {arr.dtype}")
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
            full_meta = {"video_id": record.video_id, "record": record.to_dict(), "status": "ok",
                         "regions": sorted(regions), "config_hash": self.config.hash,
                         "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta}
            (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1, default=_json_default))
            try:
                os.rename(tmp, final)
            except OSError:
                if (final / "meta.json").is_file():  # another worker/shard won the race
                    shutil.rmtree(tmp, ignore_errors=True)
                    winner = json.loads((final / "meta.json").read_text()).get("video_id")
                    self._check_stored_id(final, winner, record.video_id)
                    return
                shutil.rmtree(final, ignore_errors=True)  # a stale partial dir (should not exist)
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def write_failure(self, record: VideoRecord, reason: str, message: str) -> None:
        """Record that ``record`` could not be processed (atomic), and append to the log."""
        data = {"video_id": record.video_id, "record": record.to_dict(), "status": "failed",
                "reason": reason, "message": message, "config_hash": self.config.hash,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.failure_path(record.video_id), json.dumps(data, indent=1),
                          what=f"failure record for {record.video_id}")
        line = f"{data['written_at']}\tFAILED\t{record.video_id}\t{reason}\t{message}\n"
        with guard_disk_full(self.root / "preprocess.log", "the failure log", len(line.encode())), \
                open(self.root / "preprocess.log", "a") as log:
            log.write(line)

    def clean_partial(self, max_age_s: float = STALE_TMP_AGE_S) -> int:
        """Remove temporary entry directories left by killed processes; returns how many.

        A ``.tmp-<pid>-<host>-<random>`` directory is removed when ``<host>`` is this host and
        process ``<pid>`` no longer exists, or (any host: other machines' processes cannot be
        asked) when nothing in it changed for ``max_age_s`` seconds. A directory whose owner is
        alive is kept: another worker or shard is writing it. A ``.tmp-`` name without an owner
        (written by no current version) is removed.
        """
        n = 0
        host = _host_tag()
        now = time.time()
        for p in self.entries_dir.glob(f"{_TMP_PREFIX}*"):
            owner = _tmp_owner(p.name)
            if owner is not None:
                pid, owner_host = owner
                try:
                    age = now - max(p.stat().st_mtime, *(c.stat().st_mtime for c in p.iterdir()))
                except FileNotFoundError:  # finished (renamed) or removed meanwhile
                    continue
                dead_here = owner_host == host and not _pid_alive(pid)
                if not dead_here and age <= max_age_s:
                    continue
            shutil.rmtree(p, ignore_errors=True)
            n += 1
        return n

    # ---- reading -----------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Manifest rows (dicts with ``MANIFEST_FIELDS``) of every processed video, by id."""
        rows: dict[str, dict[str, Any]] = {}
        for meta_path in self.entries_dir.glob("*/meta.json"):
            m = json.loads(meta_path.read_text())
            rows[m["video_id"]] = _row(m, status="ok", reason="", num_frames=m.get("num_frames", ""),
                                       coverage=m.get("coverage", ""), entry=meta_path.parent.name)
        for fail_path in self.failed_dir.glob("*.json"):
            m = json.loads(fail_path.read_text())
            if m["video_id"] not in rows:
                rows[m["video_id"]] = _row(m, status="failed", reason=m["reason"], num_frames="",
                                           coverage="", entry="")
        return [rows[k] for k in sorted(rows)]

    def write_manifest(self) -> Path:
        """Rebuild ``manifest.csv`` from the entries and failures on disk (atomic)."""
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS)
        w.writeheader()
        for r in self.rows():
            w.writerow(r)
        path = self.root / "manifest.csv"
        atomic_write_text(path, buf.getvalue(), what="the cache manifest")
        return path

    def load(self, video_id: str, regions: tuple[str, ...] | list[str] | None = None,
             mmap: bool = True) -> CacheEntry:
        """Load one entry; ``regions`` = which crops to open (None = all stored).

        Raises ``KeyError`` if ``video_id`` is not cached (naming its failure reason if it failed)
        and ``CacheEntryMismatch`` if its entry directory holds another video's id.
        """
        d = self.entry_dir(video_id)
        meta_path = d / "meta.json"
        if not meta_path.is_file():
            reason = ""
            if self.is_failed(video_id):
                reason = " (it failed: " + json.loads(self.failure_path(video_id).read_text())["message"] + ")"
            raise KeyError(f"{video_id} is not in the cache {self.root}{reason}")
        meta = json.loads(meta_path.read_text())
        self._check_stored_id(d, meta.get("video_id"), video_id)
        mode = "r" if mmap else None
        arrays = {k: np.load(d / f"{k}.npy", mmap_mode=mode) for k in ARRAY_KEYS}
        names = meta["regions"] if regions is None else list(regions)
        absent = [r for r in names if r not in meta["regions"]]
        if absent:
            raise KeyError(f"{video_id}: regions {absent} are not cached (have {meta['regions']})")
        crops = {r: np.load(d / f"{r}.npy", mmap_mode=mode) for r in names}
        return CacheEntry(video_id=video_id, record=VideoRecord.from_dict(meta["record"]), meta=meta,
                          regions=crops, **arrays)

    def video_ids(self, split: str | None = None, status: str = "ok") -> list[str]:
        """Ids of cached videos, optionally of one split."""
        return [r["video_id"] for r in self.rows()
                if r["status"] == status and (split is None or r["split"] == split)]


def _row(m: dict[str, Any], **extra: Any) -> dict[str, Any]:
    rec = m["record"]
    return {"video_id": m["video_id"], "dataset": rec["dataset"], "method": rec["method"],
            "compression": rec["compression"], "label": rec["label"], "split": rec["split"],
            "path": rec["path"], **extra}


def _write_header(root: Path, header: dict[str, Any]) -> None:
    """Write ``root/cache.json`` (atomically: a reader sees the old header or the new one)."""
    atomic_write_text(root / "cache.json", json.dumps(header, indent=2), what="the cache header")


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` as it reads back from JSON (tuples become lists), so stored and asked settings compare equal."""
    return json.loads(json.dumps(dict(d)))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _host_tag() -> str:
    """This host as it appears in temporary directory names: ``<hostname>[.<pid namespace>]``.

    The hostname is written with ``[A-Za-z0-9._-]`` (at most 64 characters). On Linux the PID
    namespace's inode follows, so a container sharing the hostname but not the process table
    counts as another host (its pids cannot be asked from here).
    """
    tag = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
    try:
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))  # "pid:[4026531836]"
    except OSError:
        ns = ""
    return f"{tag}.{ns}" if ns else tag


def temp_dir_prefix() -> str:
    """The name prefix of this process's temporary entry directories: ``.tmp-<pid>-<host>-``."""
    return f"{_TMP_PREFIX}{os.getpid()}-{_host_tag()}-"


def _tmp_owner(name: str) -> tuple[int, str] | None:
    """``(pid, host)`` of a ``.tmp-<pid>-<host>-<random>`` name; None for any other name."""
    if not name.startswith(_TMP_PREFIX):
        return None
    pid, sep, rest = name[len(_TMP_PREFIX):].partition("-")
    host, sep2, rand = rest.rpartition("-")
    if not (sep and sep2 and pid.isdigit() and host and rand):
        return None
    return int(pid), host


def _pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this host (whoever owns it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
