"""The web page as an operator's console, each flow end to end in Debian's Chromium (Playwright) on real photos.

One server and one signed-in page serve the tests of this module in order (enrol → identify → verify →
collections → admin → video); the live-camera test starts its own browser with Chromium's fake camera fed
from a shared clip converted to y4m in a temp folder. Screenshots of each state go to docs/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageEnhance, ImageFilter

CHROMIUM = Path(os.environ.get("FACEWISE_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install it with .ci/install-browser.sh (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
cv2 = pytest.importorskip("cv2")

from conftest import DATA, SCREENSHOTS  # noqa: E402
from service_helpers import Server, start_server  # noqa: E402

SHOTS = SCREENSHOTS
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 90_000
expect = sync_api.expect
expect.set_options(timeout=TIMEOUT_MS)


def shot(target: Any, name: str, width: int = 900, mask: list[Any] | None = None) -> None:
    """A commit-friendly PNG of a page or element: at most ``width`` px wide, 128-colour palette."""
    im = Image.open(io.BytesIO(target.screenshot(mask=mask or []))).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(SHOTS / f"console-{name}.png", optimize=True)


def _faces(photo: Path) -> list[Any]:
    """The faces the server's (default) profile finds, largest first, as the service orders them."""
    from facewise import FaceWise

    with FaceWise(profile="default") as fw:
        return sorted(fw.detect(photo), key=lambda f: -f.box.area)


def _face_at(photo: Path, x: float, y: float) -> int:
    """Index (largest first) of the face whose box holds the point."""
    return next(i for i, f in enumerate(_faces(photo)) if f.box.x1 <= x <= f.box.x2 and f.box.y1 <= y <= f.box.y2)


class Console:
    def __init__(self, pw: Any, server: Server, page: Any, problems: list[str], tmp: Path, examples: Path) -> None:
        self.pw, self.server, self.page, self.problems, self.tmp = pw, server, page, problems, tmp
        self.examples = examples

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name, exact=True).click()

    def person(self, name: str) -> None:
        self.page.get_by_label("New person").fill(name)
        self.page.get_by_role("button", name="Create", exact=True).click()
        expect(self.page.locator("#person-name")).to_have_text(name)

    def rows(self) -> Any:
        return self.page.locator("#person-results li")


def sign_in(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    page.get_by_label("API key").fill(server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami")).to_contain_text("bootstrap-admin")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, knn: Path) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    server = start_server(tmp, "--rate", "1000", "--burst", "1000")
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1180, "height": 900}, accept_downloads=True)
            page.set_default_timeout(TIMEOUT_MS)
            # HTTP errors are listed by URL below; other console errors are problems.
            page.on("console", lambda m: problems.append(m.text) if m.type == "error"
                    and not m.text.startswith("Failed to load resource") else None)
            page.on("response", lambda r: problems.append(f"{r.status} {r.request.method} {r.url}")
                    if r.status >= 400 else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: d.accept())
            sign_in(page, server)
            yield Console(pw, server, page, problems, tmp, knn.parent)
            browser.close()
    finally:
        server.stop()


def test_upload_gives_each_file_its_own_row_and_a_non_image_refuses_only_itself(console: Console, knn: Path) -> None:
    page = console.page
    console.person("obama")
    bad = console.tmp / "notes.jpg"
    bad.write_text("these are meeting notes, not a photo\n")
    photos = [knn / "train/obama/obama.jpg", knn / "train/obama/obama2.jpg", knn / "test/obama1.jpg",
              console.examples / "obama-720p.jpg", bad]
    page.locator("#person-files").set_input_files([str(p) for p in photos])
    rows = console.rows()
    expect(rows).to_have_count(5)
    for i in range(5):
        expect(rows.nth(i)).not_to_have_attribute("data-status", "pending")
    statuses = [rows.nth(i).get_attribute("data-status") for i in range(5)]
    assert statuses[:4] == ["added"] * 4, rows.all_text_contents()
    assert statuses[4] == "rejected"
    expect(rows.nth(4)).to_contain_text("notes.jpg")
    expect(rows.nth(4)).to_contain_text("refused")
    expect(page.locator("#samples li")).to_have_count(4)
    expect(page.locator("#status")).to_contain_text("4 added, 1 refused")
    shot(page.locator("#person-detail"), "upload-results")
    # The results stay on screen until the next action, which clears them and the banner.
    page.wait_for_timeout(1500)
    expect(rows).to_have_count(5)
    console.person("biden")
    expect(rows).to_have_count(0)
    expect(page.locator("#status")).not_to_contain_text("refused")


def test_two_person_photo_lets_the_user_pick_the_face(console: Console) -> None:
    page = console.page
    expect(page.locator("#person-name")).to_have_text("biden")
    page.locator("#person-files").set_input_files(str(console.examples / "two_people.jpg"))
    picker = page.locator("#picker")
    expect(picker).to_be_visible()
    expect(page.locator("#picker-prompt")).to_contain_text("2 faces")
    expect(page.locator("#picker-buttons button")).to_have_count(3)  # face 1, face 2, skip
    shot(picker, "pick-face", width=600)
    # Biden is the right-hand face of two_people.jpg (box 792..942 x 95..245 of a 1024-px-wide photo):
    # click the middle of his box on the canvas.
    canvas = page.locator("#picker-canvas")
    w, h = canvas.evaluate("c => [c.width, c.height]")
    box = canvas.bounding_box()
    src_w = Image.open(console.examples / "two_people.jpg").width
    scale = box["width"] / src_w
    canvas.click(position={"x": 867 * scale, "y": 170 * scale})
    assert w and h
    expect(picker).to_be_hidden()
    row = console.rows().first
    expect(row).to_have_attribute("data-status", "added")
    # the face the user clicked, in the server's order (largest first; the order depends on the detector)
    expect(row).to_contain_text(f"face {_face_at(console.examples / 'two_people.jpg', 867, 170) + 1} of 2")
    expect(page.locator("#samples li")).to_have_count(1)


def test_weak_face_needs_a_confirmation_before_it_is_stored(console: Console, knn: Path) -> None:
    page = console.page
    weak = console.tmp / "biden-weak.jpg"
    im = Image.open(knn / "train/biden/biden2.jpg").convert("RGB")
    ImageEnhance.Brightness(im.filter(ImageFilter.GaussianBlur(4))).enhance(0.3).save(weak)
    page.locator("#person-files").set_input_files(str(weak))
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("blurred")
    shot(page.locator("#person-detail"), "weak-face")
    page.get_by_role("button", name="Cancel").click()
    expect(console.rows().first).to_have_attribute("data-status", "skipped")
    expect(console.rows().first).to_contain_text("not stored")
    expect(page.locator("#samples li")).to_have_count(1)
    page.locator("#person-files").set_input_files(str(weak))
    page.get_by_role("button", name="Store anyway").click()
    expect(console.rows().first).to_have_attribute("data-status", "added")
    expect(page.locator("#samples li")).to_have_count(2)


def test_identify_draws_boxes_and_enrols_an_unknown_face_in_two_clicks(console: Console, knn: Path) -> None:
    page = console.page
    console.tab("Identify")
    # biden was enrolled only from the face picked on two_people.jpg (and the weak copy): it names him.
    page.locator("#identify-file").set_input_files(str(console.examples / "biden.jpg"))
    expect(page.locator("#identify-table tbody tr")).to_have_count(1)
    expect(page.locator("#identify-table tbody tr td:nth-child(2)")).to_have_text("biden")
    page.locator("#identify-file").set_input_files(str(knn / "test" / "obama_and_biden.jpg"))
    rows = page.locator("#identify-table tbody tr")
    expect(rows).to_have_count(3)
    names = rows.locator("td:nth-child(2)").all_text_contents()
    assert sorted(names) == ["biden", "obama", "unknown"], names
    label = page.locator("#identify-canvas").get_attribute("aria-label") or ""
    assert "obama" in label and "biden" in label
    shot(page.locator("#panel-identify"), "identify", width=640)
    unknown = rows.filter(has_text="unknown")
    unknown.get_by_role("button", name="Enrol").click()
    unknown.get_by_label("New person's name").fill("stranger")
    unknown.get_by_role("button", name="Add").click()
    expect(unknown).to_contain_text("added: stranger")
    expect(page.locator("#people-list li")).to_have_count(3)


def test_verify_draws_the_compared_faces(console: Console, knn: Path) -> None:
    page = console.page
    console.tab("Verify")
    page.get_by_label("First photo").set_input_files(str(console.examples / "biden.jpg"))
    page.get_by_label("…or an enrolled person").select_option(label="biden")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#verify-result")).to_contain_text("Same person as biden")
    expect(page.locator("#verify-canvas-a")).to_have_attribute(
        "aria-label", "biden.jpg: 1 face, the largest compared (same)")
    page.get_by_label("…or an enrolled person").select_option(value="")
    # the largest face of two_people.jpg (the one compared) is obama's or biden's depending on the detector's boxes
    faces = _faces(console.examples / "two_people.jpg")
    largest_is_biden = faces[0].box.center[0] > Image.open(console.examples / "two_people.jpg").width / 2
    first = console.examples / "biden.jpg" if largest_is_biden else knn / "test" / "obama1.jpg"
    page.get_by_label("First photo").set_input_files(str(first))
    page.get_by_label("Second photo").set_input_files(str(console.examples / "two_people.jpg"))
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#verify-canvas-b")).to_have_attribute(
        "aria-label", "two_people.jpg: 2 faces, the largest compared (same)")
    expect(page.locator("#verify-result")).to_contain_text("Same person")
    shot(page.locator("#panel-verify"), "verify")


def test_collections_create_with_a_profile_and_switch_clears_results(console: Console) -> None:
    page = console.page
    console.tab("Identify")
    expect(page.locator("#identify-table")).to_be_visible()
    console.tab("Collections")
    expect(page.locator("#collections-table tbody tr")).to_have_count(1)
    options = page.locator("#new-collection-profile option")
    expect(options.first).to_be_attached()
    assert "default" in options.all_text_contents()[0] or any("default" in t for t in options.all_text_contents())
    page.get_by_label("Name", exact=True).fill("console-lobby")
    page.get_by_label("Profile").select_option("default")
    expect(page.locator("#profile-note")).to_contain_text("commercial use")
    shot(page.locator("#panel-collections"), "collections")
    page.get_by_role("button", name="Create collection").click()
    expect(page.locator("#status")).to_contain_text("Created collection console-lobby (profile default)")
    expect(page.locator("#collection")).to_have_value("console-lobby")
    expect(page.locator("#collections-table tbody tr")).to_have_count(2)
    # Nothing of the previous collection stays on screen.
    console.tab("Identify")
    expect(page.locator("#identify-table")).to_be_hidden()
    console.tab("People")
    expect(page.locator("#people-list li")).to_have_text(["Nobody yet: create a person above."])
    console.tab("Collections")
    page.get_by_role("button", name="Use default").click()
    expect(page.locator("#collection")).to_have_value("default")
    console.tab("People")
    expect(page.locator("#people-list li")).to_have_count(3)


def test_admin_sets_the_threshold_and_manages_keys(console: Console) -> None:
    page = console.page
    console.tab("Admin")
    expect(page.locator("#threshold-now")).to_contain_text("default:")
    page.get_by_label("Decide at").select_option("threshold")
    page.get_by_label("Value").fill("0.5")
    page.get_by_role("button", name="Set threshold").click()
    expect(page.locator("#threshold-now")).to_contain_text("0.5000")
    with console.server.client() as c:
        decision = c.get("/v1/collections/default").json()["decision"]
        assert decision["threshold"] == 0.5 and decision["source"] == "explicit"
    page.get_by_label("Decide at").select_option("target_far")
    page.get_by_label("Value").fill("0.001")
    page.get_by_role("button", name="Set threshold").click()
    expect(page.locator("#threshold-now")).to_contain_text("far=1e-03")
    with console.server.client() as c:
        assert c.get("/v1/collections/default").json()["decision"]["source"].startswith("far=1e-03")
    page.get_by_label("Key name").fill("console-kiosk")
    page.get_by_role("button", name="Create key").click()
    token = page.locator("#new-key-token code")
    expect(token).to_have_text(re.compile(r"^fw_"))
    kiosk = token.text_content() or ""
    with console.server.client(kiosk) as c:
        assert c.get("/v1/collections").status_code == 200
    row = page.locator("#keys-table tbody tr", has_text="console-kiosk")
    expect(row).to_contain_text("active")
    # A key without admin or enroll scope sees no admin tab, no create form and no enrol buttons.
    kiosk_page = page.context.browser.new_page()
    kiosk_page.goto(console.server.url + "/")
    kiosk_page.get_by_label("API key").fill(kiosk)
    kiosk_page.get_by_role("button", name="Sign in").click()
    expect(kiosk_page.locator("#whoami")).to_contain_text("console-kiosk")
    expect(kiosk_page.get_by_role("tab", name="Admin")).to_be_hidden()
    kiosk_page.get_by_role("tab", name="Collections").click()
    expect(kiosk_page.locator("#new-collection-form")).to_be_hidden()
    kiosk_page.get_by_role("tab", name="Identify").click()
    kiosk_page.locator("#identify-file").set_input_files(str(console.examples / "two_people.jpg"))
    expect(kiosk_page.locator("#identify-table tbody tr")).to_have_count(2)
    expect(kiosk_page.get_by_role("button", name="Enrol")).to_have_count(0)
    kiosk_page.close()
    expect(page.locator("#keys-table tbody tr", has_text="bootstrap-admin")).to_contain_text("this key")
    shot(page.locator("#panel-admin"), "admin", mask=[token])  # no token in the docs, even a throw-away one
    row.get_by_role("button", name="Revoke console-kiosk").click()
    expect(row).to_contain_text("revoked")
    with console.server.client(kiosk) as c:
        assert c.get("/v1/collections").status_code == 401


def test_video_job_timeline_download_and_enrol_a_track(console: Console) -> None:
    page = console.page
    console.tab("Video")
    page.get_by_label("Video file").set_input_files(str(console.examples / "short_hamilton_clip.mp4"))
    page.get_by_label("Frames processed per second").fill("2")
    page.get_by_role("button", name="Upload and process").click()
    expect(page.locator("#timeline-card")).to_be_visible(timeout=300_000)
    tracks = page.locator("#timeline > li")
    assert tracks.count() >= 1
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download the timeline (JSON)").click()
    doc = json.loads(Path(dl.value.path()).read_text())
    assert len(doc["tracks"]) == tracks.count()
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download the timeline (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert [int(r["track"]) for r in rows] == [t["track"] for t in doc["tracks"]]
    # The annotated video is H.264 and this Chromium plays it: metadata loads, it has a duration and it seeks.
    player = page.locator("#annotated")
    expect(player).to_be_visible()
    ready = "() => { const v = document.querySelector('#annotated'); return !v.seeking && v.readyState >= 2; }"
    page.wait_for_function(ready)
    assert player.evaluate("v => v.duration") > 1.0
    assert player.evaluate("v => v.videoWidth") == 640
    player.evaluate("v => { v.currentTime = 7.0; }")  # inside the track: a boxed face
    page.wait_for_function(ready)
    assert player.evaluate("v => v.error") is None
    shot(page.locator("#panel-video"), "video")
    first_unknown = next(i for i in range(tracks.count()) if tracks.nth(i).get_by_role("button", name="Enrol").count())
    unknown = tracks.nth(first_unknown)
    unknown.get_by_role("button", name="Enrol").click()
    unknown.get_by_label("New person's name").fill("hamilton-track")
    unknown.get_by_role("button", name="Add").click()
    expect(unknown).to_contain_text("added: hamilton-track")
    # The only HTTP error of the whole session: notes.jpg refused as not an image.
    assert [p.split(console.server.url)[-1] for p in console.problems] == ["/v1/detect?profile=default"], \
        console.problems
    assert console.problems[0].startswith("415 POST")


def y4m_from_clip(clip: Path, dest: Path, start: int, frames: int, pingpong: bool = False, slow: int = 1) -> Path:
    """Chromium's fake camera reads y4m: frames of the clip as I420 (a temp file, never committed). The camera
    loops the file; ``pingpong`` appends the frames backwards so the loop has no cut; ``slow`` plays it that
    many times slower (a person turning slowly, as a prompt asks; a busy server sees each pose on more frames)."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    images = []
    for _ in range(frames):
        ok, bgr = cap.read()
        if not ok:
            break
        images.append(bgr)
    cap.release()
    if pingpong:
        images += images[-2:0:-1]
    h, w = images[0].shape[:2]
    with dest.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{max(1, round(fps / slow))}:1 Ip A1:1 C420jpeg\n".encode())
        for bgr in images:
            out.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return dest


def test_live_camera_names_the_faces_it_sees(console: Console, tmp_path: Path, knn: Path) -> None:
    examples = knn.parent
    # Frames 100-199 of the clip show Lin-Manuel Miranda (its first seconds show no face).
    cam = y4m_from_clip(examples / "short_hamilton_clip.mp4", tmp_path / "camera.y4m", start=100, frames=100)
    server = start_server(tmp_path, "--rate", "1000", "--burst", "1000")
    try:
        with server.client() as c:
            lin = c.post("/v1/collections/default/persons", json={"name": "lin-manuel"}).json()
            png = (examples / "lin-manuel-miranda.png").read_bytes()
            r = c.post(f"/v1/collections/default/persons/{lin['id']}/faces",
                       files={"files": ("lin.png", png, "image/png")}, data={"face": "largest"})
            assert r.json()["added"] == 1, r.text
        # Its own browser (the module's playwright): the fake camera is a launch option.
        browser = console.pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            *ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={cam}"])
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            context.grant_permissions(["camera"], origin=server.url)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            sign_in(page, server)
            page.get_by_role("tab", name="Live").click()
            page.get_by_label("Send a frame every (ms)").fill("700")
            page.get_by_role("button", name="Start camera").click()
            expect(page.locator("#live-names")).to_contain_text("lin-manuel", timeout=120_000)
            expect(page.locator("#live-canvas")).to_have_attribute("aria-label", re.compile("lin-manuel"))
            # the tracked face's liveness, with its reasons, under the picture
            expect(page.locator("#live-liveness")).to_contain_text(re.compile(r"Liveness of the tracked face: "
                                                                              r"(not )?live, P\(live\) [01]\.\d\d"))
            shot(page.locator("#panel-live"), "live")
            page.get_by_role("button", name="Stop").click()
            expect(page.locator("#live-state")).to_contain_text("Camera off")
        finally:
            browser.close()
    finally:
        server.stop()


def test_live_camera_asks_for_head_motions_and_checks_them(console: Console, tmp_path: Path) -> None:
    """The webcam view's active challenge: a recorded head turn (left, then right) passes when those motions are
    asked for, with the liveness map drawn; asked to look up, the same person fails when time runs out."""
    turns = DATA / "liveness" / "apfol" / "videos" / "real2.webm"
    if not turns.is_file():
        pytest.skip(f"{turns} not found")
    cam = y4m_from_clip(turns, tmp_path / "turns.y4m", start=0, frames=214, pingpong=True, slow=3)
    browser = console.pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
        *ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={cam}"])
    try:
        context = browser.new_context(viewport={"width": 1000, "height": 1000})
        context.grant_permissions(["camera"], origin=console.server.url)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        with console.server.client() as c:  # the fast profile: a few frames a second on two busy cores too
            r = c.post("/v1/collections", json={"name": "door", "profile": "fast"})
            assert r.status_code in (201, 409), r.text
        sign_in(page, console.server)
        page.get_by_label("Collection", exact=True).select_option("door")
        page.get_by_role("tab", name="Live").click()
        page.get_by_label("Send a frame every (ms)").fill("200")
        page.get_by_label("Ask for head motions (active liveness)").check()
        page.get_by_label("Motions (blank: random)").fill("left,right")
        page.get_by_label("Seconds for the motions").fill("120")  # the most allowed: a loaded machine sends few frames
        page.get_by_label("Show where liveness looked").check()
        page.get_by_role("button", name="Start camera").click()
        prompt = page.locator("#live-prompt")
        expect(prompt).to_contain_text("now turn your head")
        expect(prompt).to_contain_text("Challenge passed", timeout=150_000)
        expect(prompt).to_contain_text("✓ left → ✓ right")
        expect(page.locator("#live-liveness")).to_contain_text("Liveness of the tracked face")
        shot(page.locator("#panel-live"), "live-challenge")
        page.get_by_role("button", name="Stop").click()
        page.get_by_label("Motions (blank: random)").fill("up")
        page.get_by_label("Seconds for the motions").fill("15")
        page.get_by_label("Show where liveness looked").uncheck()
        page.get_by_role("button", name="Start camera").click()
        expect(prompt).to_contain_text("Challenge failed", timeout=120_000)
        expect(prompt).to_contain_text("time limit 15 s passed during step 'up'")
        page.get_by_role("button", name="Stop").click()
    finally:
        browser.close()
