"""Hostile files, round two (issue 25): polyglots and page bombs at the decoder, outputs that would overwrite a
photo or follow a planted link, CSV cells a spreadsheet would run, compressed imports without end.

Library, CLI (in process, exit codes per README) and the files on disk are checked; the REST side of the same
inputs is in ``test_hostile_service2.py``.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DATA, need
from facewise.cli import app
from facewise.core.imageio import MAX_FRAMES, decode_bytes, load_image
from facewise.core.outfiles import csv_cell
from facewise.errors import ImageError
from hostile_files import many_page_tiff, tiff_fli_polyglot

EXAMPLES = DATA / "video" / "face_recognition_examples" / "examples"
HAMILTON = EXAMPLES / "short_hamilton_clip.mp4"
runner = CliRunner()


def _last_error(output: str) -> dict:
    docs = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [d for d in docs if "error" in d][-1]["error"]


# -- 3. polyglots decode as what they were sniffed as --------------------------------------------------------
def test_tiff_fli_polyglot_decodes_only_as_the_allowed_tiff() -> None:
    data = tiff_fli_polyglot(6000)
    t0 = time.perf_counter()
    img = decode_bytes(data, "poly.tif")
    assert img.size == (1, 1)  # the TIFF it sniffs as, never the 6000 x 6000 FLI behind it
    assert time.perf_counter() - t0 < 2


def test_decoded_size_is_checked_against_the_pixel_limit_too(tmp_path: Path) -> None:
    f = tmp_path / "poly.tif"
    f.write_bytes(tiff_fli_polyglot(6000))
    assert load_image(f, limit=1).size == (1, 1)  # exactly the budget: what is decoded is what was counted


# -- 4. page bombs ------------------------------------------------------------------------------------------
def test_tiff_of_64k_pages_is_refused_fast_with_a_clear_error(tmp_path: Path) -> None:
    data = many_page_tiff(65536)
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match=rf"pages\.tif: a TIFF of more than {MAX_FRAMES} pages is refused"):
        decode_bytes(data, "pages.tif")
    assert time.perf_counter() - t0 < 2  # was 39 s: Pillow's n_frames walked every page
    assert decode_bytes(many_page_tiff(MAX_FRAMES), "ok.tif").size == (1, 1)  # at the limit: first page read
    f = tmp_path / "pages.tif"
    f.write_bytes(data)
    r = runner.invoke(app, ["detect", str(f), "--json"])
    assert r.exit_code == 3, r.output
    assert _last_error(r.output)["code"] == "bad_image"


# -- 12. outputs never overwrite an input nor follow a planted link -----------------------------------------
@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    db = tmp_path_factory.mktemp("gallery") / "g.db"
    r = runner.invoke(app, ["enroll", "--name", "Lin", str(need(EXAMPLES / "lin-manuel-miranda.png")),
                            "--db", str(db), "-p", "fast"])
    assert r.exit_code == 0, r.output
    return db


def test_identify_annotate_into_the_photos_folder_is_refused_and_the_photo_kept(gallery: Path,
                                                                               tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / "lin.jpg"
    photo.write_bytes((EXAMPLES / "obama.jpg").read_bytes())
    before = photo.read_bytes()
    r = runner.invoke(app, ["identify", str(photos), "--annotate", str(photos), "--db", str(gallery), "--json"])
    assert r.exit_code == 2, r.output
    err = _last_error(r.output)
    assert err["code"] == "invalid_value" and "input" in err["message"], err
    assert photo.read_bytes() == before and sorted(p.name for p in photos.iterdir()) == ["lin.jpg"]


def test_identify_and_analyze_annotate_refuse_a_planted_link(gallery: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "annotated"
    out.mkdir()
    (out / "obama.jpg").symlink_to(victim)
    for cmd in (["identify", str(EXAMPLES / "obama.jpg"), "--db", str(gallery)],
                ["analyze", str(EXAMPLES / "obama.jpg"), "-p", "fast"]):
        r = runner.invoke(app, [*cmd, "--annotate", str(out), "--json"])
        assert r.exit_code == 2, r.output
        assert "symbolic link" in _last_error(r.output)["message"]
        assert victim.read_text() == "precious" and (out / "obama.jpg").is_symlink()
    r = runner.invoke(app, ["identify", str(EXAMPLES / "obama.jpg"), "--db", str(gallery), "--annotate",
                            str(tmp_path / "fresh")])
    assert r.exit_code == 0, r.output
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["obama.jpg"]  # no temporary file left


def test_video_outputs_ignore_planted_temp_links_and_refuse_a_linked_target(gallery: Path, tmp_path: Path) -> None:
    need(HAMILTON)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "timeline.json.tmp").symlink_to(victim)
    (out / "timeline.csv.tmp").symlink_to(victim)
    r = runner.invoke(app, ["video", str(HAMILTON), "--db", str(gallery), "-p", "fast", "--out", str(out),
                            "--duration", "1", "--no-video", "--json"])
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "precious"
    assert not (out / "timeline.json").is_symlink() and json.loads((out / "timeline.json").read_text())["tracks"]
    (out / "annotated.mp4").symlink_to(victim)
    r = runner.invoke(app, ["video", str(HAMILTON), "--db", str(gallery), "-p", "fast", "--out", str(out),
                            "--duration", "1", "--json"])
    assert r.exit_code == 2, r.output
    assert "annotated.mp4: is a symbolic link" in _last_error(r.output)["message"]
    assert victim.read_text() == "precious"


# -- 14. CSV cells a spreadsheet would run ------------------------------------------------------------------
def test_csv_cells_that_start_a_formula_are_quoted() -> None:
    for bad in ("=HYPERLINK(\"http://x\",\"y\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(bad) == "'" + bad
    assert csv_cell("Lin") == "Lin" and csv_cell(-1.5) == -1.5 and csv_cell(Path("=a")) == "'=a"


def test_video_timeline_csv_escapes_a_formula_name(tmp_path: Path, models_dir: Path) -> None:
    need(HAMILTON)
    db = tmp_path / "g.db"
    name = '=HYPERLINK("http://evil.example/","Lin")'
    r = runner.invoke(app, ["enroll", "--name", name, str(EXAMPLES / "lin-manuel-miranda.png"), "--db", str(db),
                            "-p", "fast"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["threshold", "--score", "0.3", "--db", str(db)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    r = runner.invoke(app, ["video", str(HAMILTON), "--db", str(db), "-p", "fast", "--out", str(out),
                            "--duration", "2", "--no-video", "--json"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "timeline.csv").open(encoding="utf-8")))
    people = {row["person"] for row in rows}
    assert "'" + name in people and name not in people, people
    assert all(not row["person"].startswith(("=", "+", "-", "@")) for row in rows)


# -- 14. compressed imports are bounded ---------------------------------------------------------------------
def test_gz_import_is_decompressed_under_a_cap(tmp_path: Path, gallery: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from facewise.gallery.exchange import MAX_IMPORT_BYTES

    assert MAX_IMPORT_BYTES == 1 << 30  # the default; this test lowers it to 8 MiB so as not to fill memory
    monkeypatch.setenv("FACEWISE_MAX_IMPORT_MB", "8")
    bomb = tmp_path / "bomb.json.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:  # a valid JSON prefix, then spaces past the cap
        fh.write(b'{"format": "facewise-collection", "persons": [], "pad": "')
        for _ in range(10):
            fh.write(b" " * (1 << 20))
        fh.write(b'"}')
    assert bomb.stat().st_size < 100_000
    r = runner.invoke(app, ["import", str(bomb), "--db", str(gallery), "--json"])
    assert r.exit_code == 3, r.output
    err = _last_error(r.output)
    assert err["code"] == "bad_export" and "decompresses to more than 8 MiB" in err["message"], err
    small = tmp_path / "small.json.gz"  # under the cap, the same file format still imports
    r = runner.invoke(app, ["export", str(small), "--db", str(gallery)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["import", str(small), "--db", str(gallery), "--json"])
    assert r.exit_code == 0, r.output
