"""The app in a real browser: Playwright drives Debian's chromium (headless) through the Make
tab as a visitor would (upload, make, wait for the clips and the downloads, download the
package), takes a screenshot (the README's docs/screenshot.png when PERSONA_UPDATE_SCREENSHOT
is set), then re-animates the avatar in the Animate tab.

Under CI (env CI set) a missing chromium or playwright fails the test; elsewhere it skips
with the reason. `.ci/run` installs chromium with apt-get; `make install` installs playwright.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from test_app import EXAMPLES, ROOT, running_app

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
# The README's screenshot is refreshed only on request, so test runs leave the tree clean.
SCREENSHOT_FOR_README = ROOT / "docs" / "screenshot.png"
MAKE_TIMEOUT_MS = 600_000  # a preview avatar takes about a minute on 2 CPU cores


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message + ": the browser test must run in CI")
        pytest.skip(message)
    return path


def test_make_an_avatar_in_the_browser(tmp_path):
    executable = chromium_path()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the playwright package is missing (requirements-local.txt pins it; run make install)")
        pytest.skip("the playwright package is not installed (make install)")

    with running_app(tmp_path) as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.goto(url)
            page.locator("#photo input[type=file]").set_input_files(str(EXAMPLES / "person_half.png"))
            expect(page.locator("#photo img")).to_be_visible(timeout=30_000)
            start = time.monotonic()
            page.locator("#make-button").click()

            # The check (person + body fit) comes first, then the clips and the files.
            expect(page.locator("#check img")).to_be_visible(timeout=MAKE_TIMEOUT_MS)
            expect(page.locator("#animation video")).to_be_visible(timeout=MAKE_TIMEOUT_MS)
            expect(page.locator("#turntable video")).to_be_visible(timeout=60_000)
            for name in ("avatar.persona", "avatar.ply", "animation.mp4", "turntable.mp4", "report.json"):
                expect(page.locator(f'#downloads a[href$="/{name}"]')).to_be_visible(timeout=60_000)
            expect(page.locator("#summary")).to_contain_text("Gaussians")
            print(f"avatar made in the browser in {time.monotonic() - start:.0f} s")

            with page.expect_download(timeout=60_000) as download_info:
                page.locator('#downloads a[href$="/avatar.persona"]').click()
            download = download_info.value
            assert download.suggested_filename == "avatar.persona"
            saved = tmp_path / "downloaded.persona"
            download.save_as(saved)
            assert saved.stat().st_size > 10_000

            # Let the videos show a frame and the splat viewer draw before the screenshot.
            page.wait_for_function(
                "() => [...document.querySelectorAll('#animation video, #turntable video')].every(v => v.readyState >= 2)",
                timeout=60_000,
            )
            page.wait_for_timeout(3000)
            screenshot = SCREENSHOT_FOR_README if os.environ.get("PERSONA_UPDATE_SCREENSHOT") else tmp_path / "app.png"
            screenshot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 50_000

            # The Animate tab already holds the avatar just made: a new clip, no re-optimising.
            page.get_by_role("tab", name="Animate").click()
            expect(page.locator("#avatar-file")).to_contain_text("persona")
            page.locator("#animate-button").click()
            expect(page.locator("#animate-video video")).to_be_visible(timeout=120_000)
        finally:
            browser.close()
