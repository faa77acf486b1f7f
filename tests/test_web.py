"""The web page in real headless Chromium (Debian's chromium + chromedriver, via selenium):
the fake microphone plays a bundled example; record, stop, and the translation appears."""
import shutil
import time

import pytest
import soundfile as sf

from echostream_fairseq import assets
from test_server import server  # noqa: F401  (the real uvicorn server fixture)

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert shutil.which(CHROMIUM) and shutil.which(DRIVER), "chromium and chromium-driver are installed by `make setup`"
    wav = assets.read_examples(assets.REPO_ASSETS)[0]["src_audio"]
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--use-fake-ui-for-media-stream",
              "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop",
              "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv, wav
    drv.quit()


def _wait(fn, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_record_stream_stop_shows_translation_and_plays_speech(server, browser):  # noqa: F811
    base, _ = server
    drv, wav = browser
    from selenium.webdriver.common.by import By

    drv.get(base + "/")
    rec = drv.find_element(By.ID, "record")
    rec.click()
    _wait(lambda: drv.find_element(By.ID, "status").text == "streaming")
    time.sleep(sf.info(wav).duration + 1.0)  # the fake microphone plays the file once
    rec.click()
    _wait(lambda: drv.find_element(By.ID, "status").text == "done", timeout=90)
    translation = drv.find_element(By.ID, "translation").text
    assert len(translation.split()) >= 2, translation
    assert drv.find_element(By.ID, "transcript").text.strip()
    assert int(drv.find_element(By.ID, "audio-ms").text) > 300
    assert "AL" in drv.find_element(By.ID, "latency").text


def test_translate_a_file_upload(server, browser):  # noqa: F811
    base, _ = server
    drv, wav = browser
    from selenium.webdriver.common.by import By

    drv.get(base + "/")
    drv.find_element(By.ID, "file").send_keys(str(wav))
    _wait(lambda: drv.find_element(By.ID, "status").text == "done", timeout=90)
    assert len(drv.find_element(By.ID, "translation").text.split()) >= 2
    assert int(drv.find_element(By.ID, "audio-ms").text) > 300
