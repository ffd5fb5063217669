"""The study table says what its "learned" column counts: seeds whose validation AUC reached the threshold."""

from __future__ import annotations

from forensight.study import _cell_rows, format_cells


def _run(seed: int, val_auc: float) -> dict:
    return {"region": "mouth", "head": "control", "seed": seed, "test_auc": 0.8, "val_auc": val_auc,
            "test_eer": 0.2, "n_test": 16}


def test_learned_counts_seeds_at_the_validation_threshold_and_the_table_says_so() -> None:
    runs = [_run(0, 0.95), _run(1, 0.9), _run(2, 0.89)]
    (cell,) = _cell_rows(runs, learned_at=0.9)
    assert cell["learned"] == "2/3" and cell["learned_at"] == 0.9  # >= counts; the threshold is a column
    header, row = format_cells([cell]).splitlines()
    assert "val>=0.9" in header.split() and "learned" not in header
    assert row.split()[4] == "2/3"
    (strict,) = _cell_rows(runs, learned_at=0.95)
    assert strict["learned"] == "1/3" and "val>=0.95" in format_cells([strict])
