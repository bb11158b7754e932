"""The staff service in a real browser: Debian's chromium, headless, driven by Playwright.

Log in, search by number, open a call, give a ground and play it (the audio
element reaches 'playing' and its time advances), place a hold, open a
disclosure request, produce the requester's copy and download it, and check
the download with ``appliance verify-export``. Screenshots of the main
screens go to tests/web/artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from _office import FAR, PASSWORDS

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
# platform.md: without the background-networking flags chromium keeps calling outside hosts
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # no sound card here and no real user gesture: let the audio element play
         "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def browser_page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is required (tools/bootstrap.sh test installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1150, "height": 820}, accept_downloads=True, locale="ja-JP")
        context.set_default_timeout(20000)
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_a_handler_finds_plays_holds_and_a_manager_handles_a_request(browser_page, live_server,
                                                                      tmp_path):
    page = browser_page
    base, d, calls = live_server

    page.goto(f"{base}/login")
    assert "職員ログイン" in page.content()
    shot(page, "01-login")
    page.fill("input[name=user]", "kacho")
    page.fill("input[name=password]", PASSWORDS["kacho"])
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base}/calls")
    assert page.locator("#calls tbody tr").count() == 3

    # search by number, with the hyphens people type
    page.fill("#filters input[name=number]", "0263-34-5678")
    page.click("#filters button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("#calls tbody tr")
    assert rows.count() == 1
    assert FAR[0] in rows.first.inner_text()
    shot(page, "02-calls-search")

    rows.first.locator("a").click()
    page.wait_for_url(f"{base}/calls/{calls[0]}")
    assert page.locator("#audio").is_hidden()       # nothing plays before a ground is given

    page.select_option("#listen-form select[name=ground]", "duty")
    page.fill("#listen-form input[name=reference]", "苦情対応 第12号")
    page.fill("#listen-form input[name=password]", PASSWORDS["kacho"])
    page.click("#listen-form button[type=submit]")
    page.wait_for_function(
        "() => { const a = document.getElementById('audio');"
        " return a && !a.paused && a.readyState >= 3 && a.currentTime > 0.5; }", timeout=20000)
    t1 = page.evaluate("document.getElementById('audio').currentTime")
    page.wait_for_timeout(700)
    t2 = page.evaluate("document.getElementById('audio').currentTime")
    assert t2 > t1, (t1, t2)
    assert page.locator("#levels-figure").is_visible()
    assert "設置目的内の確認" in page.locator("#listen-info").inner_text()
    shot(page, "03-call-playing")

    # 保管延長 from the call page
    page.select_option("#hold-form select[name=ground]", "duty")
    page.fill("#hold-form input[name=reference]", "苦情対応 第12号")
    page.click("#hold-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('held-state').textContent.trim() === 'はい'")

    # 開示請求: find the requester's calls by number and period, then the copy
    page.goto(f"{base}/requests")
    page.fill("#request-form input[name=number]", FAR[1])
    page.fill("#request-form input[name=since]", "2026-01-01")
    page.fill("#request-form input[name=until]", "2026-01-31")
    page.fill("#request-form input[name=reference]", "開示請求 第7号")
    page.click("#request-form button[type=submit]")
    page.wait_for_url(f"{base}/requests/REQ-*")
    assert page.locator("#request-calls tbody tr").count() == 1
    assert FAR[1] in page.locator("#request-calls").inner_text()
    page.fill("#request-export-form input[name=recipient]", "請求者本人")
    page.fill("#request-export-form input[name=password]", PASSWORDS["kacho"])
    page.click("#request-export-form button[type=submit]")
    page.wait_for_selector("#request-exports a.download")
    shot(page, "04-request")
    with page.expect_download() as info:
        page.click("#request-exports a.download")
    zipped = tmp_path / "bundle.zip"
    info.value.save_as(zipped)
    out = tmp_path / "bundle"
    zipfile.ZipFile(zipped).extractall(out)
    [bundle] = list(out.iterdir())
    # the appliance's own published key pins the signer (issue 20 item 7)
    check = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(d),
                            "verify-export", str(bundle), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in manifest["calls"]] == [calls[1]]
    assert manifest["ground"]["code"] == "disclosure"

    page.goto(f"{base}/exports")
    assert page.locator("#exports tbody tr").count() == 1
    shot(page, "05-exports")
    page.goto(f"{base}/ledger")
    assert "改ざんは検出されませんでした" in page.locator("#ledger-verify").inner_text()
    ledger = page.locator("#ledger").inner_text()
    for kind in ("閲覧", "保管延長", "開示請求", "提供", "複製"):
        assert kind in ledger, kind
    shot(page, "06-ledger")

    # 延長解除 of one hold by its number: the request's hold on the other call stays
    page.goto(f"{base}/holds")
    rows = page.locator("#holds tbody tr")
    assert rows.count() == 2
    mine = rows.filter(has_text=calls[0])
    hold_id = mine.locator("td").first.inner_text().strip()
    assert hold_id.isdigit()
    page.fill("#release-form input[name=call_ids]", calls[0])
    page.select_option("#release-form select[name=ground]", "duty")
    page.fill("#release-form input[name=reference]", "苦情対応 終了")
    page.fill("#release-form input[name=hold_ids]", f"#{hold_id}")
    page.click("#release-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#holds tbody tr').length === 1")
    assert calls[1] in page.locator("#holds").inner_text()
    assert calls[0] not in page.locator("#holds").inner_text()
    shot(page, "07-holds")
    page.goto(f"{base}/status")
    shot(page, "08-status")
    page.click("a.lang")
    page.wait_for_load_state()
    assert "Appliance status" in page.content()
