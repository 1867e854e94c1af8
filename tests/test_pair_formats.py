"""Anyone's pair list (issue 28): every format facewise reads, written small by the test over real LFW photos,
where relative paths point (--root or the list's folder), how folds are made, and malformed lines named by file
and line. No model is loaded here: tests/test_eval_pair_lists.py runs the lists through the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import LFW, need
from facewise.errors import NotFoundError, ValidationError
from facewise.eval.pairlist import detect_format, load_pair_list, parse_cfp
from facewise.eval.pairs import Columns, PairListError, parse_pairs_csv

IMAGES = LFW / "images"


def lfw_pairs(n: int = 10) -> list[tuple[str, str, bool]]:
    """The first ``n`` same and ``n`` different pairs of LFW's pairs.txt as relative paths ``Name/Name_000k.jpg``."""
    lines = [line.split() for line in need(LFW / "pairs.txt").read_text().splitlines()[1:]]
    same = [(f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg", f"{t[0]}/{t[0]}_{int(t[2]):04d}.jpg", True)
            for t in lines if len(t) == 3][:n]
    diff = [(f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg", f"{t[2]}/{t[2]}_{int(t[3]):04d}.jpg", False)
            for t in lines if len(t) == 4][:n]
    return same + diff


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_cfp(root: Path, *, splits: int = 3, per_split: int = 2, relative: str = "") -> Path:
    """A CFP-shaped dataset: Protocol/Pair_list_F.txt and _P.txt over LFW photos, Split/FP and Split/FF. Image
    paths are ``<relative>/Name/Name_000k.jpg``; with CFP's own ``../Data/Images``, ``Data/Images`` is a link to
    the shared LFW images."""
    if relative == "../Data/Images":
        (root / "Data").mkdir(parents=True)
        (root / "Data" / "Images").symlink_to(need(IMAGES), target_is_directory=True)
    prefix = f"{relative}/" if relative else ""
    pairs = lfw_pairs(splits * per_split)
    same, diff = pairs[: len(pairs) // 2], pairs[len(pairs) // 2 :]
    frontal = sorted({a for a, _, _ in pairs})
    profile = sorted({b for _, b, _ in pairs})
    proto = root / "Protocol"
    write(proto / "Pair_list_F.txt", "".join(f"{i} {prefix}{p}\n" for i, p in enumerate(frontal, 1)))
    write(proto / "Pair_list_P.txt", "".join(f"{i} {prefix}{p}\n" for i, p in enumerate(profile, 1)))
    for k in range(splits):
        d = proto / "Split" / "FP" / f"{k + 1:02d}"
        for name, chunk in (("same.txt", same), ("diff.txt", diff)):
            rows = chunk[k * per_split : (k + 1) * per_split]
            write(d / name, "".join(f"{frontal.index(a) + 1},{profile.index(b) + 1}\n" for a, b, _ in rows))
        d = proto / "Split" / "FF" / f"{k + 1:02d}"
        write(d / "same.txt", f"{k + 1},{k + 1}\n")
        write(d / "diff.txt", f"{k + 1},{k + 2}\n")
    return root


# -- delimited lists -----------------------------------------------------------------------------------------
def test_peer_csv_outside_the_photo_folder_with_root(tmp_path: Path) -> None:
    rows = lfw_pairs()
    f = write(tmp_path / "lists" / "peer.csv",
              "file_x,file_y,Decision\n" + "".join(f"{a},{b},{'Yes' if s else 'No'}\n" for a, b, s in rows))
    plist = load_pair_list(f, root=need(IMAGES))
    assert plist.format == "csv" and plist.root == IMAGES and plist.root_from == "--root"
    assert [p.same for p in plist.pairs] == [s for _, _, s in rows]
    assert all(p.path1.is_file() and p.path2.is_file() for p in plist.pairs)
    assert plist.folds_by == "identity" and plist.n_folds == 10 and not plist.warnings
    d = plist.describe()
    assert d["root_from"] == "--root" and d["format"] == "csv" and d["folds_by"] == "identity"
    # without --root: the list's folder, and the report says so
    plist = load_pair_list(f)
    assert plist.root == f.parent and plist.root_from == "the list's folder"
    assert plist.pairs[0].path1 == f.parent / rows[0][0]


@pytest.mark.parametrize(("yes", "no"), [("Yes", "No"), ("True", "False"), ("same", "different"), ("1", "0"),
                                         ("genuine", "impostor")])
def test_label_words(tmp_path: Path, yes: str, no: str) -> None:
    f = write(tmp_path / "l.csv", "a,b,label\n" + "".join(
        f"{a},{b},{yes if s else no}\n" for a, b, s in lfw_pairs(3)))
    assert [p.same for p in load_pair_list(f, root=IMAGES).pairs] == [True] * 3 + [False] * 3


def test_four_columns_pandas_index_and_columns_option(tmp_path: Path) -> None:
    rows = lfw_pairs()
    body = "".join(f"{i},{a},{b},{'Yes' if s else 'No'}\n" for i, (a, b, s) in enumerate(rows))
    f = write(tmp_path / "peer4.csv", ",file_x,file_y,Decision\n" + body)
    auto = load_pair_list(f, root=IMAGES)  # label column named, two columns of file names: no --columns needed
    assert [(p.path1.name, p.same) for p in auto.pairs] == [(Path(a).name, s) for a, _, s in rows]
    by_name = load_pair_list(f, root=IMAGES, columns="file_x,file_y,Decision")
    by_number = load_pair_list(f, root=IMAGES, columns="2,3,4")
    assert by_name.pairs == auto.pairs == by_number.pairs
    # columns in another order, with a column no rule knows: the header can't tell, --columns can
    g = write(tmp_path / "odd.csv", "verdict2,quality,right,left\n" + "".join(
        f"{'y' if s else 'n'},0.5,{b},{a}\n" for a, b, s in rows))
    with pytest.raises(PairListError, match=r"odd\.csv:1: 4 columns .*--columns"):
        load_pair_list(g, root=IMAGES)
    odd = load_pair_list(g, root=IMAGES, columns="left,right,verdict2")
    assert [(p.path1, p.path2, p.same) for p in odd.pairs] == [(p.path1, p.path2, p.same) for p in auto.pairs]
    with pytest.raises(ValidationError, match="no column 'nope'"):
        load_pair_list(g, columns="left,right,nope")
    with pytest.raises(ValidationError, match="--columns"):
        Columns.parse("a,b")
    with pytest.raises(ValidationError, match="past the 4 columns"):
        load_pair_list(g, columns="1,2,9")


def test_tsv_detected_from_a_tab_and_fold_column(tmp_path: Path) -> None:
    rows = lfw_pairs(4)
    f = write(tmp_path / "pairs.txt", "img1\timg2\tsame\tfold\n" + "".join(
        f"{a}\t{b}\t{int(s)}\t{i % 2}\n" for i, (a, b, s) in enumerate(rows)))
    assert detect_format(f) == "tsv"
    plist = load_pair_list(f, root=IMAGES)
    assert plist.format == "tsv" and plist.folds_by == "list"
    assert [p.fold for p in plist.pairs] == [i % 2 for i in range(8)]
    assert load_pair_list(f, fmt="tsv", root=IMAGES).pairs == plist.pairs
    bare = write(tmp_path / "bare.tsv", "".join(f"{a}\t{b}\t{'true' if s else 'false'}\n" for a, b, s in rows))
    assert [p.same for p in load_pair_list(bare, root=IMAGES).pairs] == [s for _, _, s in rows]


def test_identity_folds_only_where_folders_are_people(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flat = write(tmp_path / "flat.csv", "".join(
        f"{Path(a).name},{Path(b).name},{int(s)}\n" for a, b, s in lfw_pairs()))  # one folder for everybody
    plist = load_pair_list(flat)
    assert plist.folds_by == "pair" and "per image pair" in plist.warnings[0] and "per image pair" in caplog.text
    assert "disagrees" in plist.warnings[0]


def test_delimited_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    rows = lfw_pairs(2)
    good = "".join(f"{a},{b},{int(s)}\n" for a, b, s in rows)
    with pytest.raises(PairListError, match=r"l\.csv:3: 'Decision' must be one of"):
        first = good[: good.index("\n") + 1]
        load_pair_list(write(tmp_path / "l.csv", "x,y,Decision\n" + first + "a.jpg,b.jpg,maybe\n"))
    with pytest.raises(PairListError, match=r"t\.tsv:6: expected 3 columns"):
        load_pair_list(write(tmp_path / "t.tsv", good.replace(",", "\t") + "\n" + "a.jpg\tb.jpg\n"))
    with pytest.raises(PairListError, match=r"w\.csv:1: expected 3 columns 'path1,path2,same', got 4"):
        load_pair_list(write(tmp_path / "w.csv", "1,a.jpg,b.jpg,1\n"))
    with pytest.raises(PairListError, match=r"f\.csv:2: the fold 'x'"):
        load_pair_list(write(tmp_path / "f.csv", "a,b,same,fold\na.jpg,b.jpg,1,x\n"))
    with pytest.raises(PairListError, match=r"h\.csv: no pairs found \(only a header\)"):
        load_pair_list(write(tmp_path / "h.csv", "a,b,label\n"))
    with pytest.raises(PairListError, match=r"odd\.dat:1: not a pair list"):
        load_pair_list(write(tmp_path / "odd.dat", "hello world\n"))
    with pytest.raises(NotFoundError):
        load_pair_list(tmp_path / "none.csv")
    with pytest.raises(ValidationError, match="--format"):
        load_pair_list(tmp_path / "h.csv", fmt="xml")
    # the old entry point reads the same files the same way
    assert parse_pairs_csv(write(tmp_path / "ok.csv", good), root=IMAGES)[0].path1 == IMAGES / rows[0][0]


# -- LFW ----------------------------------------------------------------------------------------------------
def test_lfw_lists_folds_and_root(tmp_path: Path) -> None:
    src = need(LFW / "pairs.txt").read_text().splitlines()
    same = [line for line in src[1:] if len(line.split()) == 3]
    diff = [line for line in src[1:] if len(line.split()) == 4]
    f = write(tmp_path / "pairs.txt", "2 3\n" + "\n".join(same[:3] + diff[:3] + same[3:6] + diff[3:6]) + "\n")
    plist = load_pair_list(f, root=IMAGES)
    assert plist.format == "lfw" and plist.folds_by == "list" and plist.n_folds == 2
    assert plist.root_from == "--root" and all(p.path1.is_file() for p in plist.pairs)
    assert load_pair_list(f).root_from == "the list's folder"
    (tmp_path / "images").mkdir()
    assert load_pair_list(f).root_from == "images/ beside the list"
    # no header: no folds in the list, so by identity (LFW names are people)
    bare = write(tmp_path / "dev" / "bare.txt", "\n".join(same[:10] + diff[:10]) + "\n")
    plist = load_pair_list(bare, root=IMAGES)
    assert plist.format == "lfw" and plist.folds_by == "identity" and plist.n_folds == 10


# -- CFP ----------------------------------------------------------------------------------------------------
def test_cfp_protocol_folder_every_way_of_naming_it(tmp_path: Path) -> None:
    ds = write_cfp(tmp_path / "cfp")
    proto = ds / "Protocol"
    for named in (ds, proto, proto / "Pair_list_F.txt", proto / "Pair_list_P.txt", proto / "Split" / "FP"):
        plist = load_pair_list(named, root=IMAGES)
        assert plist.format == "cfp-fp" and plist.folds_by == "list", named
        assert plist.n_folds == 3 and len(plist.pairs) == 12 and sum(p.same for p in plist.pairs) == 6
        assert all(p.path1.is_file() and p.path2.is_file() for p in plist.pairs)
    assert [p.fold for p in plist.pairs] == [0] * 4 + [1] * 4 + [2] * 4  # the splits are the folds
    ff = load_pair_list(proto / "Split" / "FF", root=IMAGES)
    assert ff.format == "cfp-ff" and len(ff.pairs) == 6 and ff.pairs[0].path1 == ff.pairs[0].path2
    assert load_pair_list(ds, fmt="cfp-ff", root=IMAGES).pairs == ff.pairs
    with pytest.raises(ValidationError, match="FF split"):
        load_pair_list(proto / "Split" / "FF", fmt="cfp-fp")
    # without --root, CFP's own ../Data/Images/... paths are read from the Protocol folder
    own = write_cfp(tmp_path / "own", relative="../Data/Images")
    plist = load_pair_list(own)
    assert plist.root == own / "Protocol" and plist.root_from == "the Protocol folder"
    assert str(plist.pairs[0].path1).startswith(str(own / "Protocol" / ".." / "Data" / "Images"))
    assert all(p.path1.is_file() and p.path2.is_file() for p in plist.pairs)


def test_cfp_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    ds = write_cfp(tmp_path / "cfp")
    proto = ds / "Protocol"
    same = proto / "Split" / "FP" / "02" / "same.txt"
    same.write_text("1,1\n1;2\n")
    with pytest.raises(PairListError, match=r"02/same\.txt:2: expected 'i,j'"):
        parse_cfp(ds)
    same.write_text("1,999\n")
    with pytest.raises(PairListError, match=r"02/same\.txt:1: index 999 is not in Pair_list_P\.txt"):
        parse_cfp(ds)
    same.unlink()
    with pytest.raises(PairListError, match=r"02/same\.txt: missing"):
        parse_cfp(ds)
    plist = proto / "Pair_list_F.txt"
    plist.write_text(plist.read_text() + "x ../Data/Images/nobody.jpg\n")
    lines = len(plist.read_text().splitlines())
    with pytest.raises(PairListError, match=rf"Pair_list_F\.txt:{lines}: expected 'index path'"):
        load_pair_list(ds)
    with pytest.raises(PairListError, match="nor a CFP dataset"):
        load_pair_list(proto / "Split" / "FP" / "01")  # one split folder: neither a list nor a dataset
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PairListError, match="is a folder"):
        load_pair_list(empty)
