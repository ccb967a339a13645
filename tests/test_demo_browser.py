"""The demo page in headless Chromium (Selenium + Debian's chromium-driver) against the real server:
type a text, press the button, see the entities marked with their labels and a bar per category;
a model without ner shows no Entities panel, one without a classifier no Categories panel.

Skipped only when Chromium or its driver is not installed (Debian: apt-get install -y chromium
chromium-driver).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
import spacy
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from scripts.inference.predict import Predictor, describe_pipeline, predict_texts
from scripts.inference.server import create_app
from scripts.inference.serving import ServeOptions

pytestmark = pytest.mark.slow  # a server and a browser

KEY = "demo-test-key"
TEXT = "Python and SQL are required. We offer a yearly bonus."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(predictor: Predictor) -> Iterator[str]:
    """The server over `predictor`, with an API key, on a free port; yields its URL."""
    app = create_app(predictor, options=ServeOptions(api_key=KEY))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server_url(predictor):
    with serving(predictor) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def analyse(browser, *, text: str, key: str) -> str:
    """Fill the form, press the button and return the status line once it has answered."""
    for field, value in (("text", text), ("key", key)):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    previous = browser.find_element(By.ID, "status").text
    browser.find_element(By.ID, "go").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(
        lambda _: (
            status.text not in ("", previous, "Analysing…")
            and browser.find_element(By.ID, "go").is_enabled()
        )
    )
    return status.text


def open_page(browser, url: str) -> None:
    browser.get(f"{url}/")
    WebDriverWait(browser, 30).until(
        lambda b: "en_tiny-0.0.1" in b.find_element(By.ID, "model").text
    )


def test_the_page_marks_the_entities_and_draws_a_bar_per_category(server_url, browser, predictor):
    open_page(browser, server_url)
    text = browser.find_element(By.ID, "text")
    assert text.get_attribute("value") == ""  # no sample text that fits another model
    assert text.get_attribute("placeholder") == (
        "Paste a text here to mark its entities (SKILL) and score its categories "
        "(requirements, responsibilities, benefits)."
    )
    for panel in ("entities-panel", "cats-panel"):
        assert browser.find_element(By.ID, panel).is_displayed(), panel
    refused = analyse(browser, text=TEXT, key="")
    assert refused.startswith("401:") and "Bearer" in refused  # the key is asked for
    status = analyse(browser, text=TEXT, key=KEY)
    (expected,) = predict_texts(predictor, [TEXT])
    best = max(expected["cats"], key=expected["cats"].get)
    n = len(expected["entities"])
    assert status == f"{n} {'entity' if n == 1 else 'entities'} · {best} · en_tiny-0.0.1"
    marks = browser.find_elements(By.CSS_SELECTOR, "#entities mark.entity")
    assert expected["entities"], "the tiny pipeline finds entities in TEXT"
    assert [mark.text.split() for mark in marks] == [
        [*ent["text"].split(), ent["label"]] for ent in expected["entities"]
    ]
    rows = browser.find_elements(By.CSS_SELECTOR, "#cats .cat")
    assert sorted(row.get_attribute("data-label") for row in rows) == sorted(predictor.cat_labels)
    for row in rows:
        score = expected["cats"][row.get_attribute("data-label")]
        assert row.find_element(By.CLASS_NAME, "score").text == f"{score:.3f}"
        fill = row.find_element(By.CLASS_NAME, "bar-fill")
        width = float(fill.value_of_css_property("width").removesuffix("px"))
        track = float(row.find_element(By.CLASS_NAME, "bar").size["width"])
        assert abs(width - score * track) <= 2  # the bar is as long as the score
    chosen = browser.find_elements(By.CSS_SELECTOR, "#cats .cat.chosen")
    assert [row.get_attribute("data-label") for row in chosen] == [
        max(expected["cats"], key=expected["cats"].get)
    ]
    console = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "status of 401" not in entry["message"]
    ]
    assert console == []  # nothing refused by the page's Content-Security-Policy, no errors


@pytest.mark.parametrize(
    "left_out, shown, hidden, placeholder",
    [
        (
            "ner",
            "cats-panel",
            "entities-panel",
            "Paste a text here to score its categories (requirements, responsibilities, benefits).",
        ),
        (
            "textcat",
            "entities-panel",
            "cats-panel",
            "Paste a text here to mark its entities (SKILL).",
        ),
    ],
)
def test_the_page_shows_only_what_the_model_predicts(
    tiny_pipeline, browser, left_out, shown, hidden, placeholder
):
    predictor = describe_pipeline(spacy.load(tiny_pipeline, exclude=[left_out]))
    with serving(predictor) as url:
        open_page(browser, url)
        assert browser.find_element(By.ID, "text").get_attribute("placeholder") == placeholder
        assert browser.find_element(By.ID, shown).is_displayed()
        assert not browser.find_element(By.ID, hidden).is_displayed()
        status = analyse(browser, text=TEXT, key=KEY)
        (expected,) = predict_texts(predictor, [TEXT])
        if left_out == "ner":  # what the classifier chose, no count of entities it cannot find
            best = max(expected["cats"], key=expected["cats"].get)
            assert status == f"{best} · en_tiny-0.0.1"
            assert len(browser.find_elements(By.CSS_SELECTOR, "#cats .cat")) == 3
        else:
            n = len(expected["entities"])
            assert status == f"{n} {'entity' if n == 1 else 'entities'} · en_tiny-0.0.1"
