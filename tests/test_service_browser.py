"""The web page end to end in Debian's Chromium (driven by Playwright; no browser is downloaded)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path(os.environ.get("FACEWISE_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install it with .ci/install-browser.sh (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import SCREENSHOTS  # noqa: E402
from service_helpers import start_server  # noqa: E402

SCREENSHOT = SCREENSHOTS / "service.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


def small_png(png: bytes, dest: Path, width: int = 900) -> None:
    """A commit-friendly copy: at most ``width`` pixels wide, 128-colour palette."""
    im = Image.open(io.BytesIO(png)).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def test_web_page_end_to_end(tmp_path: Path, knn: Path) -> None:
    expect = sync_api.expect
    server = start_server(tmp_path, "--rate", "1000", "--burst", "1000")
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1180, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            page.goto(server.url + "/")
            page.get_by_label("API key").fill("fw_wrong_key")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#status")).to_contain_text("not accepted")
            problems.clear()  # the 401 above is logged by the browser on purpose

            page.get_by_label("API key").fill(server.key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#whoami")).to_contain_text("bootstrap-admin")
            assert page.evaluate("sessionStorage.getItem('facewise.key')") == server.key

            for name in ("obama", "biden"):
                page.get_by_label("New person").fill(name)
                page.get_by_role("button", name="Create").click()
                expect(page.locator("#person-name")).to_have_text(name)
                photos = sorted((knn / "train" / name).glob("*.jpg"))
                page.locator("#person-files").set_input_files([str(p) for p in photos])
                expect(page.locator("#samples li")).to_have_count(len(photos))
                expect(page.locator("#samples li").first).to_contain_text("quality")
                expect(page.locator("#samples li img").first).to_have_attribute("src", re.compile(r"^blob:"))
            expect(page.locator("#people-list li")).to_have_count(2)

            page.get_by_role("tab", name="Identify").click()
            page.locator("#identify-file").set_input_files(str(knn / "test" / "obama_and_biden.jpg"))
            rows = page.locator("#identify-table tbody tr")
            expect(rows).to_have_count(3)
            names = rows.locator("td:nth-child(2)").all_text_contents()
            assert {"obama", "biden"} <= set(names), names
            label = page.locator("#identify-canvas").get_attribute("aria-label") or ""
            assert "obama" in label and "biden" in label
            shot = page.screenshot(full_page=True)
            (tmp_path / "service.png").write_bytes(shot)
            small_png(shot, SCREENSHOT)

            page.get_by_role("tab", name="Identify").focus()
            page.keyboard.press("ArrowRight")  # tabs follow the ARIA pattern: arrows move between them
            expect(page.get_by_role("tab", name="Verify")).to_have_attribute("aria-selected", "true")
            expect(page.locator("#panel-verify")).to_be_visible()
            page.get_by_label("First photo").set_input_files(str(knn / "test" / "obama1.jpg"))
            page.get_by_label("…or an enrolled person").select_option(label="obama")
            page.get_by_role("button", name="Compare").click()
            expect(page.locator("#verify-result")).to_contain_text("Same person")

            # The API docs render from packaged assets: no network is reachable from CI or this browser.
            page.goto(server.url + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("facewise")
            expect(page.locator(".opblock-summary-path").first).to_be_visible()

            browser.close()
    finally:
        server.stop()
    assert not problems, problems
    assert Image.open(SCREENSHOT).width <= 900
