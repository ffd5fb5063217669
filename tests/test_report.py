"""Report writers: plots are valid non-empty PNGs, tables and JSON hold the right content."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from forensight.report import (
    plot_confusion,
    plot_roc,
    plot_roc_multi,
    to_jsonable,
    write_json,
    write_table,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture
def ys() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    return y, y + rng.normal(size=60)


def test_roc_plots(tmp_path: Path, ys: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = ys
    p = plot_roc(y, s, tmp_path / "sub" / "roc.png", label="attention")
    assert p == tmp_path / "sub" / "roc.png" and _is_png(p)
    q = plot_roc_multi({"control": (y, s * 0.5 + 0.3), "attention": (y, s)}, tmp_path / "multi.png")
    assert _is_png(q)
    with pytest.raises(ValueError):
        plot_roc_multi({}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="one class"):
        plot_roc(np.ones(5), np.arange(5.0), tmp_path / "bad.png")


def test_confusion_plot(tmp_path: Path) -> None:
    assert _is_png(plot_confusion(np.array([[50, 3], [7, 40]]), tmp_path / "cm.png"))
    assert _is_png(plot_confusion([[0, 0], [0, 0]], tmp_path / "cm0.png"))
    with pytest.raises(ValueError, match="2x2"):
        plot_confusion([[1, 2, 3]], tmp_path / "bad.png")


def test_write_table(tmp_path: Path) -> None:
    rows = [
        {"model": "region_b1_control", "auc": 0.912345678, "ci": [0.88, 0.94], "n": np.int64(140)},
        {"model": "region_b1_attention", "auc": np.float32(0.95), "note": "a|b"},
    ]
    md = write_table(rows, tmp_path / "t.md", tmp_path / "t.csv")
    text = (tmp_path / "t.md").read_text()
    assert text == md
    lines = text.strip().splitlines()
    assert lines[0] == "| model | auc | ci | n | note |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| region_b1_control | 0.9123 | [0.8800, 0.9400] | 140 |  |"
    assert lines[3] == "| region_b1_attention | 0.9500 |  |  | a\\|b |"
    with open(tmp_path / "t.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert [r["model"] for r in got] == ["region_b1_control", "region_b1_attention"]
    assert float(got[0]["auc"]) == 0.912345678 and got[0]["n"] == "140" and got[1]["n"] == ""
    assert json.loads(got[0]["ci"]) == [0.88, 0.94] and got[1]["note"] == "a|b"
    only_md = write_table(rows, None, None, columns=["model", "auc"], digits=2)
    assert only_md.splitlines()[2] == "| region_b1_control | 0.91 |"


def test_write_json_atomic_and_numpy(tmp_path: Path) -> None:
    obj = {"auc": np.float64(0.9), "n": np.int32(3), "ok": np.bool_(True), "cm": np.eye(2, dtype=np.int64),
           "ci": (0.1, float("nan")), "path": tmp_path, 5: "int key"}
    p = write_json(obj, tmp_path / "deep" / "m.json")
    data = json.loads(p.read_text())
    assert data == {"auc": 0.9, "n": 3, "ok": True, "cm": [[1, 0], [0, 1]], "ci": [0.1, None],
                    "path": str(tmp_path), "5": "int key"}
    assert [x.name for x in p.parent.iterdir()] == ["m.json"]  # no temp file left behind
    write_json({"v": 2}, p)  # replace
    assert json.loads(p.read_text()) == {"v": 2}
    with pytest.raises(TypeError):
        write_json({"x": object()}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert [x.name for x in (tmp_path).iterdir() if x.name.startswith(".")] == []


def test_to_jsonable_tensor() -> None:
    torch = pytest.importorskip("torch")
    assert to_jsonable({"w": torch.tensor([0.5, 0.25]), "s": torch.tensor(1)}) == {"w": [0.5, 0.25], "s": 1}


def test_contact_sheet_draws_every_region(tmp_path: Path) -> None:
    from forensight.report import contact_sheet

    regions = {"full": np.full((10, 32, 32, 3), 200, np.uint8), "lips": np.zeros((10, 96, 96, 1), np.uint8)}
    p = contact_sheet(regions, tmp_path / "s.png", frames=4, cell=40)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    img = cv2.imread(str(p))
    assert img.shape[0] == 2 * 44 + 4 and img.shape[1] == 70 + 4 * 44 + 4
    with pytest.raises(ValueError):
        contact_sheet({}, tmp_path / "x.png")
