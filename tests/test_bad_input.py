"""The bad-input corpus through every entry point: library, CLI (subprocess) and the REST API (in process).

Everything is generated here from one LFW photo (nothing downloaded). A "bad" input must give a clear
:class:`ImageError` (library), exit code 3 with one ``error:`` line per file and no traceback (CLI), or a
JSON error with a stable code and never a 5xx (API). An "ok" input decodes; a "face" input also shows
its face (the EXIF-rotated one only if the rotation was applied).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA
from facewise.errors import EnrollmentError, FacewiseError, ImageError, NoFaceError
from reliability_helpers import run_cli, service_app, text

ATHERIS_SECONDS = 10
WEBCAM_AVI = DATA / "video" / "misc"
HAMILTON = DATA / "video" / "face_recognition_examples" / "examples" / "short_hamilton_clip.mp4"
API_ERROR_CODES = {"bad_image", "unsupported_media_type", "too_many_pixels", "payload_too_large", "no_face",
                   "multiple_faces", "invalid_request"}


@dataclass(frozen=True)
class Item:
    path: Path
    kind: str  # "bad": must be refused; "ok": must decode; "face": must decode and show a face
    what: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def upload_name(self) -> str:  # a multipart file name must be text: keep the bytes as latin-1
        return os.fsencode(self.path.name).decode("latin-1")


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def flat_png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> None:
    """A real, complete RGB PNG of one colour, compressed row by row (never the whole image in memory)."""
    row = b"\x00" + bytes(rgb) * width
    comp = zlib.compressobj(6)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` pixels with almost no data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(
        b"IEND", b"")


def _write(folder: Path, name: str | bytes, data: bytes) -> Path | None:
    raw = os.fsencode(folder) + b"/" + (name if isinstance(name, bytes) else name.encode())
    try:
        with open(raw, "wb") as fh:
            fh.write(data)
    except OSError:
        return None  # a file system that refuses non-UTF-8 names
    return Path(os.fsdecode(raw))


@pytest.fixture(scope="module")
def faces(lfw: Path) -> tuple[Path, Path, Path]:
    """Two photos of one person (enrolled, probe) and one of somebody else."""
    people = sorted(d for d in (lfw / "images").iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 2)
    a = sorted(people[0].glob("*.jpg"))
    other = sorted(people[1].glob("*.jpg"))[0]
    return a[0], a[1], other


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, faces: tuple[Path, Path, Path]) -> list[Item]:
    root = tmp_path_factory.mktemp("corpus")
    probe = faces[1]
    jpeg = probe.read_bytes()
    photo = Image.open(probe).convert("RGB")
    png = _encode(photo, "PNG")
    rng = np.random.default_rng(7)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90° counter-clockwise: "rotate 90° clockwise to display"
    alpha = photo.convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize(photo.size))
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    deep = Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16))
    specs: list[tuple[str | bytes, bytes | None, str, str]] = [
        ("empty.jpg", b"", "bad", "zero-byte JPEG"),
        ("empty.png", b"", "bad", "zero-byte PNG"),
        ("cut.jpg", jpeg[: len(jpeg) // 2], "bad", "truncated JPEG"),
        ("cut.png", png[: len(png) - 300], "bad", "truncated PNG"),
        ("noise.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "bad", "random bytes as .jpg"),
        ("noise.png", b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "bad",
         "PNG signature then random bytes"),
        ("words.gif", b"definitely not an image\n" * 10, "bad", "text as .gif"),
        ("bomb.png", bomb_png(50_000, 50_000), "bad", "decompression bomb (2.5 gigapixels in 100 bytes)"),
        ("huge_100mp.png", None, "bad", "real 10000x10000 flat-colour PNG (over the pixel limit)"),
        ("really_png.jpg", png, "face", "valid PNG with a .jpg extension"),
        ("one_px.png", _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "ok", "1x1 image"),
        ("five_px.jpg", _encode(Image.new("RGB", (5, 5), (200, 10, 10)), "JPEG"), "ok", "5x5 image"),
        ("deep16.png", _encode(deep, "PNG"), "ok", "16-bit grey PNG"),
        ("cmyk.jpg", _encode(photo.convert("CMYK"), "JPEG", quality=95), "ok", "CMYK JPEG"),
        ("palette.png", _encode(photo.convert("P"), "PNG"), "ok", "palette PNG"),
        ("alpha.png", _encode(alpha, "PNG"), "ok", "RGBA PNG with a gradient alpha"),
        ("anim.gif", gif.getvalue(), "ok", "animated GIF (first frame used)"),
        ("exif_rotated.jpg", _encode(photo.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95),
         "face", "photo stored sideways with EXIF orientation 6"),
        (b"caf\xe9.jpg", jpeg, "face", "valid JPEG, non-UTF-8 (latin-1) file name"),
        (b"d\xe9fectueux.jpg", jpeg[:2000], "bad", "truncated JPEG, non-UTF-8 file name"),
    ]
    items = []
    for name, data, kind, what in specs:
        if data is None:
            path: Path | None = root / str(name)
            flat_png(path, 10_000, 10_000, (30, 120, 200))
        else:
            path = _write(root, name, data)
        if path is not None:
            items.append(Item(path, kind, what))
    odd = root / "odd["  # a path that reads as Rich markup: "odd[/b].jpg"
    odd.mkdir()
    items.append(Item(odd / "b].jpg", "bad", "markup-like path, zero bytes"))
    (odd / "b].jpg").write_bytes(b"")
    return items


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Item]:
    """A truncated and a zero-length video, if facewise.video exists."""
    pytest.importorskip("facewise.video", reason="facewise.video is not part of this build")
    root = tmp_path_factory.mktemp("videos")
    out = [Item(root / "empty.mp4", "bad", "zero-length video")]
    out[0].path.write_bytes(b"")
    avis = sorted(WEBCAM_AVI.glob("*.avi")) if WEBCAM_AVI.exists() else []
    if avis:
        data = avis[0].read_bytes()
        (root / "cut.avi").write_bytes(data[: len(data) // 2])
        out.append(Item(root / "cut.avi", "bad", "AVI cut in half"))
    if HAMILTON.exists():
        (root / "cut.mp4").write_bytes(HAMILTON.read_bytes()[:300_000])
        out.append(Item(root / "cut.mp4", "bad", "MP4 without its index (moov at the end)"))
    return out


@pytest.fixture(scope="module")
def fw(tmp_path_factory: pytest.TempPathFactory, faces: tuple[Path, Path, Path]):
    from facewise import FaceWise

    f = FaceWise(db=tmp_path_factory.mktemp("lib") / "g.db", profile="default")
    assert f.enroll("enrolled", [faces[0]])[0].status == "added"
    yield f
    f.close()


def _outcome(fn):  # type: ignore[no-untyped-def]
    """("ok", value) or ("error", exc) for facewise errors; anything else fails the test."""
    try:
        return "ok", fn()
    except FacewiseError as exc:
        return "error", exc
    except Exception as exc:  # the point of the test
        pytest.fail(f"{type(exc).__name__} escaped: {exc!r}")


# -- library ---------------------------------------------------------------------------------------------------
def test_library_identify_enroll_verify(corpus: list[Item], fw, faces: tuple[Path, Path, Path]) -> None:
    tried = 0
    for item in corpus:
        kind, ident = _outcome(lambda item=item: fw.identify(item.path))
        kind_v, ver = _outcome(lambda item=item: fw.verify(item.path, faces[1]))
        kind_e, enr = _outcome(lambda item=item: fw.enroll(f"person {item.what}", [item.path]))
        tried += 3
        if kind_e == "error":  # an enrolment that stores nothing raises, with each photo's outcome
            assert isinstance(enr, EnrollmentError), f"{item.what}: {enr!r}"
            enr = enr.results
        if item.kind == "bad":
            assert kind == "error" and isinstance(ident, ImageError) and item.name in str(ident), (item.what, ident)
            assert kind_v == "error" and isinstance(ver, ImageError), (item.what, ver)
            assert enr[0].status == "rejected" and item.name in enr[0].reason, (item.what, enr[0])
            continue
        assert kind == "ok", f"{item.what}: {ident}"
        assert kind_v == "ok" or isinstance(ver, NoFaceError), (item.what, ver)
        assert enr[0].status in ("added", "rejected", "duplicate"), enr[0]
        if item.kind == "face":
            assert len(ident) == 1, f"{item.what}: expected the face, found {len(ident)}"
            assert ver.same and ver.score > 0.95, f"{item.what}: the same photo must match itself ({ver.score})"
    assert tried == 3 * len(corpus)


def test_100_megapixel_png_memory_stays_bounded(corpus: list[Item]) -> None:
    """Refused from the header at the default limit (no pixel decoded); decoded in bounded memory if allowed."""
    huge = next(i.path for i in corpus if i.name == "huge_100mp.png")
    assert huge.stat().st_size < 1_000_000  # a small file that would be 300 MB of pixels
    code = ("import json, resource, sys\nfrom facewise.core.imageio import load_image\n"
            "from facewise.errors import ImageError\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    img = load_image(sys.argv[1]); out = {'shape': list(img.pixels.shape)}\n"
            "except ImageError as e:\n    out = {'error': str(e)}\n"
            "out['base_mb'] = base / 1024\nout['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "print(json.dumps(out))")

    def measure(env: dict[str, str]) -> dict:
        r = subprocess.run([sys.executable, "-c", code, str(huge)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, **env})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    refused = measure({})
    assert "exceeds the limit" in refused["error"]
    assert refused["peak_mb"] - refused["base_mb"] < 50, refused  # nothing was decoded
    allowed = measure({"FACEWISE_MAX_PIXELS": "150000000"})
    assert allowed.get("shape") == [10_000, 10_000, 3], allowed
    per_pixel = (allowed["peak_mb"] - allowed["base_mb"]) * 2**20 / 1e8
    assert per_pixel < 12, f"decoding took {per_pixel:.1f} bytes per pixel"  # RGBA + bytes + array: ~10


# -- CLI -----------------------------------------------------------------------------------------------------
def _error_lines(stderr: bytes) -> list[str]:
    return [ln for ln in text(stderr).splitlines() if ln.startswith("error:")]


def _assert_clean(r: subprocess.CompletedProcess, rc: int) -> None:
    assert r.returncode == rc, (r.returncode, text(r.stderr)[-2000:])
    assert "Traceback" not in text(r.stderr) and "Traceback" not in text(r.stdout), text(r.stderr)[-3000:]


def test_cli_identify_and_enroll_bad_files(corpus: list[Item], faces: tuple[Path, Path, Path],
                                           tmp_path: Path) -> None:
    bad = [i for i in corpus if i.kind == "bad"]
    db = tmp_path / "g.db"
    _assert_clean(run_cli("enroll", "--name", "first", str(faces[2]), "--db", str(db)), 0)  # identify needs a gallery
    r = run_cli("identify", *[os.fsencode(i.path) for i in bad], "--db", str(db))
    _assert_clean(r, 3)
    lines = _error_lines(r.stderr)
    assert len(lines) == len(bad), lines  # one clear line per unreadable file
    for i in bad:
        stem = os.fsencode(i.name).split(b"\xe9")[-1].decode()
        assert any(stem in ln for ln in lines), (i.what, lines)
    r = run_cli("enroll", "--name", "somebody", *[os.fsencode(i.path) for i in bad], "--db", str(db))
    _assert_clean(r, 3)
    assert len(_error_lines(r.stderr)) == len(bad)
    good = [os.fsencode(i.path) for i in corpus if i.kind != "bad"]
    r = run_cli("identify", *good, "--db", str(db), "--json")
    _assert_clean(r, 0)
    rows = [json.loads(line) for line in text(r.stdout).splitlines()]
    assert sum(1 for row in rows if "box" in row) >= sum(i.kind == "face" for i in corpus)


def test_cli_verify_one_line_per_failure(corpus: list[Item], faces: tuple[Path, Path, Path]) -> None:
    by_name = {i.name: i for i in corpus}
    for name in ("huge_100mp.png", "d\udce9fectueux.jpg", "b].jpg"):
        if name not in by_name:
            continue
        r = run_cli("verify", os.fsencode(by_name[name].path), str(faces[0]))
        _assert_clean(r, 3)
        assert len(_error_lines(r.stderr)) == 1, text(r.stderr)


def test_cli_bad_video(videos: list[Item], tmp_path: Path) -> None:
    """The truncated AVI (the zero-length video through the CLI is in test_video.py)."""
    from facewise import FaceWise

    with FaceWise(db=tmp_path / "g.db") as fw:  # `video` only reads a gallery: it must exist (else exit 5)
        _ = fw.info
    for item in [v for v in videos if v.name == "cut.avi"]:
        r = run_cli("video", str(item.path), "--db", str(tmp_path / "g.db"), "--no-video", "--out",
                    str(tmp_path / item.name))
        _assert_clean(r, 3)
        assert len(_error_lines(r.stderr)) == 1 and item.name in _error_lines(r.stderr)[0], text(r.stderr)


# -- REST API ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("fastapi", reason="the service extra is not installed")
    pytest.importorskip("multipart", reason="the service extra is not installed")
    from fastapi.testclient import TestClient

    app, token = service_app(tmp_path_factory.mktemp("api"))
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _api_error(r) -> str:  # type: ignore[no-untyped-def]
    assert r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


def test_api_identify_verify_enroll(corpus: list[Item], api, faces: tuple[Path, Path, Path]) -> None:
    r = api.post("/v1/collections/default/persons", json={"name": "api corpus"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    ref = ("ref.jpg", faces[0].read_bytes(), "image/jpeg")
    requests = 0
    for item in corpus:
        up = (item.upload_name, item.path.read_bytes(), "application/octet-stream")
        answers = [api.post("/v1/collections/default/identify", files={"image": up}),
                   api.post("/v1/collections/default/verify", files={"image": up, "other": ref}),
                   api.post(f"/v1/collections/default/persons/{pid}/faces", files=[("files", up)],
                            data={"face": "largest"})]
        requests += len(answers)
        for r in answers:
            assert r.status_code < 500, (item.what, r.status_code, r.text)
        if item.kind == "bad":
            for r in answers:
                assert r.status_code in (413, 415, 422) and _api_error(r) in API_ERROR_CODES, (item.what, r.text)
        else:
            assert answers[0].status_code == 200, (item.what, answers[0].text)
            # an enrolment that stores nothing (a photo without a face) is 422 with the file's reason (issue 24)
            assert answers[2].status_code == 200 or (answers[2].status_code == 422 and _api_error(answers[2])
                                                     == "nothing_enrolled"), (item.what, answers[2].text)
            if answers[1].status_code != 200:
                assert _api_error(answers[1]) == "no_face", (item.what, answers[1].text)
            if item.kind == "face":
                assert len(answers[0].json()["faces"]) == 1 and answers[1].json()["same"], item.what
    assert requests == 3 * len(corpus)


def test_api_bad_videos(videos: list[Item], api) -> None:
    for item in videos:
        r = api.post("/v1/collections/default/videos", files={"video": (item.name, item.path.read_bytes(),
                                                                        "video/mp4")}, data={"fps": "5"})
        assert r.status_code < 500, r.text
        if r.status_code != 202:
            assert _api_error(r) == "unsupported_media_type", r.text
            continue
        job = r.json()["id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = api.get(f"/v1/jobs/{job}").json()
            if state["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.3)
        assert state["state"] == "failed", (item.what, state)
        assert state["error"]["code"] != "internal_error" and item.name in state["error"]["message"], state


# -- fuzzing -------------------------------------------------------------------------------------------------
def test_atheris_fuzzes_image_decoding(tmp_path: Path) -> None:
    """Coverage-guided fuzzing of ``decode_bytes`` for a bounded time (tests/fuzz/fuzz_decode.py)."""
    pytest.importorskip("atheris", reason="atheris has no build for this Python/platform (pip install atheris)")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8))
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"):
        (seeds / f"seed.{fmt.lower()}").write_bytes(_encode(im, fmt))
    target = Path(__file__).parent / "fuzz" / "fuzz_decode.py"
    (tmp_path / "corpus").mkdir()
    r = subprocess.run([sys.executable, str(target), f"-max_total_time={ATHERIS_SECONDS}", "-rss_limit_mb=2048",
                        "-print_final_stats=1", str(tmp_path / "corpus"), str(seeds)], capture_output=True,
                       text=True, timeout=ATHERIS_SECONDS + 120, cwd=tmp_path)
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert "stat::number_of_executed_units" in tail, tail


def test_face_choice_has_one_rule_for_the_library_cli_and_rest(tmp_path: Path) -> None:
    """only | largest | an ASCII index 0..9999, parsed by the library; the CLI (exit 2) and REST (422) say the same."""
    from facewise.api import parse_face_choice
    from facewise.errors import ValidationError

    assert [parse_face_choice(t) for t in ("only", "largest", "0", "12")] == ["only", "largest", 0, 12]
    for bad in ("²", "-1", "first", "10000", ""):
        with pytest.raises(ValidationError, match="face must be only, largest or a face index"):
            parse_face_choice(bad)
    r = run_cli("verify", "a.jpg", "b.jpg", "--face", "²", cwd=tmp_path)
    assert r.returncode == 2 and "--face must be only, largest or a face index" in text(r.stderr), text(r.stderr)
    assert "Traceback" not in text(r.stderr)
