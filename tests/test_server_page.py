"""GET / in headless Chromium: upload jfk.flac, watch the streamed text arrive, compare it with
model.transcribe; a screenshot is left in tests/artifacts/ for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from clips import SHARED_AUDIO

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from serving import SERVER_API_KEY  # noqa: E402

JFK = SHARED_AUDIO / "jfk.flac"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def browser():
    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if driver_path is None or chromium is None:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_page_uploads_and_streams_the_transcript(browser, server_url, tiny_en):
    expected = tiny_en.transcribe(str(JFK))["text"]
    browser.get(server_url + "/")
    browser.find_element(By.ID, "file").send_keys(str(JFK))
    browser.find_element(By.ID, "key").send_keys(SERVER_API_KEY)
    browser.find_element(By.ID, "start").click()
    WebDriverWait(browser, 120).until(
        lambda b: b.find_element(By.ID, "status").text == "done"
        or "error" in b.find_element(By.ID, "status").text
    )
    assert browser.find_element(By.ID, "status").text == "done"
    assert browser.find_element(By.ID, "transcript").text.strip() == expected.strip()
    assert browser.find_element(By.ID, "srt").is_enabled()
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "server_page.png"
    browser.save_screenshot(str(screenshot))
    print(f"\nscreenshot: {screenshot}")
