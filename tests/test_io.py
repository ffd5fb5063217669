"""Atomic writes: content lands exactly, failures leave the previous file and no temp files, shared perms."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.io import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text

POSIX = os.name == "posix"


@pytest.fixture
def umask_022() -> Iterator[int]:
    old = os.umask(0o022)
    try:
        yield 0o022
    finally:
        os.umask(old)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_content_and_replaces(tmp_path: Path) -> None:
    p = tmp_path / "a.bin"
    assert atomic_write_bytes(p, b"\x00first\xff") == p
    assert p.read_bytes() == b"\x00first\xff"
    assert atomic_write_text(str(p), "zweite Fassung – ü\r\n") == p  # str paths accepted, Path returned
    assert p.read_bytes() == "zweite Fassung – ü\r\n".encode()  # newlines written as given
    atomic_write_text(p, "ü", encoding="latin-1")
    assert p.read_bytes() == b"\xfc"
    assert _names(tmp_path) == ["a.bin"]


def test_writer_gets_a_temp_file_next_to_the_target(tmp_path: Path) -> None:
    seen: list[Path] = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        assert tmp.is_file() and tmp.stat().st_size == 0
        tmp.write_bytes(b"payload")

    p = atomic_write(tmp_path / "m.pt", writer)
    assert len(seen) == 1 and seen[0].parent == tmp_path and seen[0] != p
    assert seen[0].name.startswith(".m.pt.") and seen[0].name.endswith(".tmp")
    assert not seen[0].exists() and p.read_bytes() == b"payload"


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failing_writer_leaves_previous_file_and_no_temp(tmp_path: Path, exc: BaseException) -> None:
    p = tmp_path / "result.json"
    before = b'{"auc": 0.91}\n'
    p.write_bytes(before)

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(b'{"auc": 0.')  # half written, then the failure
            f.flush()
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(p, writer)
    assert p.read_bytes() == before
    assert _names(tmp_path) == ["result.json"]


def test_failing_writer_without_previous_file_leaves_nothing(tmp_path: Path) -> None:
    def writer(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space"):
        atomic_write(tmp_path / "new.bin", writer)
    assert _names(tmp_path) == []


def test_failed_rename_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert _names(tmp_path) == ["taken"] and _names(target) == ["inside"]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "nowhere" / "x.bin", b"data")
    assert _names(tmp_path) == []


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_permissions_follow_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        paths = [atomic_write_bytes(tmp_path / "b.bin", b"x"), atomic_write_text(tmp_path / "t.txt", "x"),
                 atomic_write_json(tmp_path / "j.json", {"x": 1}),
                 atomic_write(tmp_path / "w.bin", lambda p: p.write_bytes(b"x"))]
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p.name


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
def test_explicit_mode_and_replacing_keeps_normal_perms(tmp_path: Path, umask_022: int) -> None:
    p = atomic_write(tmp_path / "secret.key", lambda t: t.write_bytes(b"k"), mode=0o600)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    os.chmod(p, 0o444)  # the old file's mode is not inherited: the new file is a new inode
    atomic_write_bytes(p, b"k2")
    assert stat.S_IMODE(p.stat().st_mode) == 0o644 and p.read_bytes() == b"k2"


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=4096))
def test_bytes_round_trip(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = atomic_write_bytes(Path(d) / "x.bin", data)
        assert p.read_bytes() == data
        assert _names(Path(d)) == ["x.bin"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=2000), encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_text_round_trip(text: str, encoding: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = atomic_write_text(Path(d) / "x.txt", text, encoding=encoding)
        assert p.read_bytes() == text.encode(encoding)
        assert p.read_bytes().decode(encoding) == text


@settings(max_examples=40, deadline=None)
@given(obj=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20))
def test_json_round_trip(obj: object) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = atomic_write_json(Path(d) / "x.json", obj)
        text = p.read_text(encoding="utf-8")
        assert text.endswith("\n") and json.loads(text) == obj


def test_json_format(tmp_path: Path) -> None:
    p = atomic_write_json(tmp_path / "a.json", {"b": [1, 2], "a": "é"})
    assert p.read_text() == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "\\u00e9"\n}\n'  # key order kept
    atomic_write_json(p, [1], indent=None)
    assert p.read_text() == "[1]\n"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_refuses_non_finite_and_leaves_nothing(tmp_path: Path, bad: float) -> None:
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "new.json", {"auc": bad})
    assert _names(tmp_path) == []
    old = atomic_write_json(tmp_path / "old.json", {"auc": 0.5})
    before = old.read_bytes()
    with pytest.raises(ValueError):
        atomic_write_json(old, [1.0, bad])
    assert old.read_bytes() == before and _names(tmp_path) == ["old.json"]


def test_json_refuses_unknown_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"x": object()})
    assert _names(tmp_path) == []


def test_atomic_write_dir_is_all_or_nothing_and_never_overwrites(tmp_path: Path) -> None:
    from forensight.io import atomic_write_dir

    out = atomic_write_dir(tmp_path / "a" / "folder", lambda d: (d / "x.txt").write_text("x"))
    assert (out / "x.txt").read_text() == "x"
    with pytest.raises(FileExistsError, match="never overwritten"):
        atomic_write_dir(out, lambda d: (d / "y.txt").write_text("y"))
    assert sorted(p.name for p in out.iterdir()) == ["x.txt"]

    def fail(d: Path) -> None:
        (d / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write_dir(tmp_path / "b", fail)
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.*"))
    (tmp_path / "empty").mkdir()
    atomic_write_dir(tmp_path / "empty", lambda d: (d / "z.txt").write_text("z"))  # an empty folder is fine
    assert (tmp_path / "empty" / "z.txt").is_file()
