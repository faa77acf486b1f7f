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


def test_a_silent_file_ends_done_with_no_latency(server, browser, tmp_path):  # noqa: F811
    """A session that translates nothing gets null latencies (NaN is not JSON): the page still
    parses its 'done' and says so."""
    import numpy as np

    base, _ = server
    drv, _ = browser
    from selenium.webdriver.common.by import By

    silent = tmp_path / "silence.wav"
    sf.write(str(silent), np.zeros(24000, dtype="int16"), 16000)
    drv.get(base + "/")
    drv.find_element(By.ID, "file").send_keys(str(silent))
    _wait(lambda: drv.find_element(By.ID, "status").text == "done", timeout=60)
    assert drv.find_element(By.ID, "latency").text == "none (no translation)"
    assert drv.find_element(By.ID, "translation").text == ""


def test_a_newcomer_sees_the_language_and_plays_an_example(server, browser):  # noqa: F811
    """The page names the language the model understands, lists the shipped example sentences,
    and 'play' streams one at the pace of speech: its translation appears."""
    base, _ = server
    drv, _ = browser
    from selenium.webdriver.common.by import By

    drv.get(base + "/")
    _wait(lambda: "Spanish" in drv.find_element(By.ID, "sub").text)
    # the pair selector offers the shipped pair; the record button speaks the source language
    pair = drv.find_element(By.ID, "pair")
    assert pair.get_attribute("value") == "es-en" and "Spanish → English" in pair.text
    assert drv.find_element(By.ID, "record").text == "● Grabar"
    items = _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#examples li"))
    rows = assets.read_examples(assets.REPO_ASSETS)
    assert len(items) == len(rows) and rows[0]["src_text"] in items[0].text
    items[1].find_element(By.CSS_SELECTOR, "button.play-example").click()
    _wait(lambda: drv.find_element(By.ID, "status").text == "streaming")
    _wait(lambda: drv.find_element(By.ID, "status").text == "done", timeout=90)
    assert len(drv.find_element(By.ID, "translation").text.split()) >= 2
    assert int(drv.find_element(By.ID, "audio-ms").text) > 300


def test_example_audio_is_served_and_nothing_else(server):  # noqa: F811
    import json
    import urllib.error
    import urllib.request

    base, _ = server
    info = json.loads(urllib.request.urlopen(base + "/examples", timeout=10).read())
    assert info["source_language"] == "Spanish" and info["target_language"] == "English"
    wav = urllib.request.urlopen(base + info["examples"][0]["audio"], timeout=10).read()
    assert wav[:4] == b"RIFF"
    for bad in ("/examples/..%2Fmodel%2Fcheckpoint.wav", "/examples/nope.wav"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + bad, timeout=10)
        assert e.value.code == 404


def test_the_pair_selector_switches_examples_and_labels(served_pairs, browser):  # noqa: F811
    """With several pairs served, the page lists them; choosing one shows its examples and labels,
    and a recording goes to the chosen pair."""
    base, _ = served_pairs
    drv, wav = browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    drv.get(base + "/")
    _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#examples li"))
    pair = Select(drv.find_element(By.ID, "pair"))
    shipped = list(assets.shipped_pairs(assets.REPO_ASSETS))
    assert [o.get_attribute("value") for o in pair.options] == [*shipped, "xx-en"]
    assert drv.find_element(By.ID, "record").text == "● Grabar"
    if "ko-en" in shipped:  # the seed system's pair: Korean labels and its own examples
        es_first = drv.find_element(By.CSS_SELECTOR, "#examples li").text
        pair.select_by_value("ko-en")
        _wait(lambda: drv.find_element(By.ID, "record").text == "● 녹음 시작")
        _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#examples li")
              and drv.find_element(By.CSS_SELECTOR, "#examples li").text != es_first)
        ko = assets.read_examples(assets.shipped_pairs(assets.REPO_ASSETS)["ko-en"])
        assert any(ex["src_text"] in drv.find_element(By.ID, "examples").text for ex in ko)
    pair.select_by_value("xx-en")
    _wait(lambda: drv.find_element(By.ID, "record").text == "● Record")  # the micro pair names no language
    assert not drv.find_element(By.ID, "examples-box").is_displayed()
    drv.find_element(By.ID, "file").send_keys(str(wav))
    _wait(lambda: drv.find_element(By.ID, "status").text == "done", timeout=90)
    micro = drv.find_element(By.ID, "translation").text
    pair.select_by_value("es-en")
    _wait(lambda: drv.find_element(By.ID, "record").text == "● Grabar")
    _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#examples li"))
    drv.execute_script("document.getElementById('status').textContent = 'idle'")
    drv.find_element(By.ID, "file").clear()
    drv.find_element(By.ID, "file").send_keys(str(wav))
    _wait(lambda: drv.find_element(By.ID, "status").text == "done", timeout=90)
    shipped = drv.find_element(By.ID, "translation").text
    assert len(shipped.split()) >= 2 and shipped != micro  # each upload went to the pair chosen for it
