"""Tests for facewise.eval.pairs (LFW pairs.txt and generic CSV pair lists)."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from facewise.eval.pairs import Pair, lfw_image_path, parse_lfw_pairs, parse_pairs_csv

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEWISE_DATA", REPO.parent / "shared" / "data"))
LFW_PAIRS = DATA / "lfw" / "pairs.txt"
LFW_IMAGES = DATA / "lfw" / "images"


@pytest.mark.skipif(not LFW_PAIRS.is_file(), reason=f"LFW pairs.txt not found at {LFW_PAIRS}")
def test_real_lfw_pairs_file() -> None:
    pairs = parse_lfw_pairs(LFW_PAIRS, LFW_IMAGES)
    assert len(pairs) == 6000
    assert sum(p.same for p in pairs) == 3000
    per_fold = collections.Counter(p.fold for p in pairs)
    assert per_fold == {k: 600 for k in range(10)}
    same_per_fold = collections.Counter(p.fold for p in pairs if p.same)
    assert same_per_fold == {k: 300 for k in range(10)}
    first = pairs[0]
    assert first == Pair(
        LFW_IMAGES / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg",
        LFW_IMAGES / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg",
        True,
        0,
    )
    assert first.path1.is_file() and first.path2.is_file()
    assert not pairs[300].same and pairs[300].fold == 0 and pairs[600].same and pairs[600].fold == 1


def test_lfw_image_path_pads_to_four_digits() -> None:
    assert lfw_image_path("/r", "Jane_Doe", 7) == Path("/r/Jane_Doe/Jane_Doe_0007.jpg")


def test_lfw_single_block_and_headerless_variants(tmp_path: Path) -> None:
    dev = tmp_path / "pairsDevTest.txt"
    dev.write_text("2\nA 1 2\nB 3 4\nA 1 B 2\nC 10 D 1\n")
    pairs = parse_lfw_pairs(dev, tmp_path / "img")
    assert [p.same for p in pairs] == [True, True, False, False]
    assert {p.fold for p in pairs} == {0}
    assert pairs[3].path1 == tmp_path / "img" / "C" / "C_0010.jpg"

    bare = tmp_path / "bare.txt"
    bare.write_text("A\t1\t2\n\nA 1 B 2\n")
    pairs = parse_lfw_pairs(bare, "/imgs")
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 0)]
    assert parse_lfw_pairs(bare)[0].path1 == tmp_path / "A" / "A_0001.jpg"  # no images/ folder here
    (tmp_path / "images").mkdir()
    assert parse_lfw_pairs(bare)[0].path1 == tmp_path / "images" / "A" / "A_0001.jpg"


def test_lfw_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.txt"
    bad.write_text("2 1\nA 1 2\nA 1 B 2\nA 1 B 2\nC 1 D 2\n")  # fold 1 starts with a different pair
    with pytest.raises(ValueError, match=r"pairs\.txt:4: expected a same-person"):
        parse_lfw_pairs(bad, tmp_path)
    bad.write_text("1 1\nA 1 2\nA x B 2\n")
    with pytest.raises(ValueError, match=r"pairs\.txt:3: image number 'x'"):
        parse_lfw_pairs(bad, tmp_path)
    bad.write_text("1 2\nA 1 2\nB 1 2\nA 1 B 2\n")
    with pytest.raises(ValueError, match="announces 4 pairs"):
        parse_lfw_pairs(bad, tmp_path)
    bad.write_text("A 1 2 3 4\n")
    with pytest.raises(ValueError, match=r"pairs\.txt:1: .*got 5 fields"):
        parse_lfw_pairs(bad, tmp_path)


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_pairs_with_header_relative_paths_and_folds(tmp_path: Path) -> None:
    rows = ["path1,path2,same"]
    for i in range(30):
        rows.append(f"p{i}/a.jpg,p{i}/b.jpg,{['1', 'true', 'Yes'][i % 3]}")
        rows.append(f"p{i}/a.jpg,p{(i + 1) % 30}/a.jpg,{['0', 'False', 'no'][i % 3]}")
    rows.append("p0/c.jpg,p1/c.jpg,0")  # same identity pair as row "p0/a.jpg,p1/a.jpg"
    csv_path = _write_csv(tmp_path / "pairs.csv", rows)
    pairs = parse_pairs_csv(csv_path)
    assert len(pairs) == 61
    assert sum(p.same for p in pairs) == 30
    assert pairs[0].path1 == tmp_path / "p0" / "a.jpg"
    assert {p.fold for p in pairs} == set(range(10))
    # 30 same keys and 30 different keys, dealt round-robin: 3 + 3 keys per fold.
    keys_per_fold = collections.Counter(p.fold for p in pairs[:60])
    assert set(keys_per_fold.values()) == {6}
    assert pairs[-1].fold == pairs[1].fold  # identity pair (p0, p1) stays in one fold
    # Deterministic, and independent of row order.
    assert parse_pairs_csv(csv_path) == pairs
    shuffled = _write_csv(tmp_path / "shuffled.csv", rows[:1] + rows[1:][::-1])
    assert sorted(parse_pairs_csv(shuffled), key=str) == sorted(pairs, key=str)
    assert parse_pairs_csv(csv_path, seed=1) != pairs


def test_csv_without_header_and_flat_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = ["x1.jpg,x2.jpg,1", "x1.jpg,y1.jpg,0", "/abs/q.jpg,y2.jpg,yes", "y1.jpg,x1.jpg,0"]
    csv_path = _write_csv(tmp_path / "flat.csv", rows)
    pairs = parse_pairs_csv(csv_path)
    assert [p.same for p in pairs] == [True, False, True, False]
    assert pairs[2].path1 == Path("/abs/q.jpg")
    # One folder -> too few identity pairs -> folds per (unordered) image pair, with a warning.
    assert "per image pair" in caplog.text
    assert pairs[1].fold == pairs[3].fold
    assert all(0 <= p.fold < 10 for p in pairs)


def test_csv_malformed_line_reports_line_number(tmp_path: Path) -> None:
    csv_path = _write_csv(
        tmp_path / "bad.csv", ["path1,path2,same", "a/1.jpg,b/1.jpg,1", "a/2.jpg,b/2.jpg,maybe"]
    )
    with pytest.raises(ValueError, match=r"bad\.csv:3: 'same' must be one of"):
        parse_pairs_csv(csv_path)
    csv_path = _write_csv(tmp_path / "bad.csv", ["a/1.jpg,b/1.jpg,1", "", "a/2.jpg,b/2.jpg"])
    with pytest.raises(ValueError, match=r"bad\.csv:3: expected 3 columns"):
        parse_pairs_csv(csv_path)
