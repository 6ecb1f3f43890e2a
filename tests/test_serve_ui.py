"""The chat page in a real browser: Debian's chromium, headless, driven by Playwright.

Playwright's Python package drives the system's ``/usr/bin/chromium`` (``executable_path``); no
browser is ever downloaded. Without chromium these tests skip and say why, except where
``POLYMODAL_REQUIRE_BROWSER`` is set (CI installs chromium and must not skip them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.fake_llm import ScriptedChatModel
from support.server import ServerThread

from polymodal import Agent
from polymodal.serving import ServeSettings, create_app
from polymodal.tools import Captioner, ImageGenerator

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("POLYMODAL_REQUIRE_BROWSER"):
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

MARKUP = "It shows <b>bold</b> **strong** ![pixel](http://10.9.9.9/t.png) <img src=x onerror=alert(1)> [s1]."
CAPTION = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}]})
DRAW = json.dumps({"steps": [{"id": "s1", "tool": "image_generator", "args": {"prompt": "a red bicycle"}}],
                   "answer": "s1"})


@pytest.fixture(scope="module")
def server(tiny_models) -> Iterator[ServerThread]:
    llm = ScriptedChatModel(responses=[CAPTION, MARKUP, DRAW])
    agent = Agent(llm=llm, tools=[Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=5),
                                  ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2)])
    with ServerThread(create_app(agent, ServeSettings(preload=False))) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-extensions"])
        yield chromium
        chromium.close()


def test_attach_ask_see_steps_and_answer_as_text_then_a_generated_image(server, browser, media, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((server.url, "data:", "blob:")) else outside.append(r.url))
    page.goto(server.url + "/")
    page.wait_for_selector("#ask textarea", timeout=60_000)

    page.set_input_files("#ask input[type=file]", str(media.png(size=(64, 48))))
    page.locator("#ask textarea").fill("What is in this photo?")
    page.wait_for_selector("#ask img", timeout=20_000)  # the upload is attached before sending
    page.keyboard.press("Enter")
    page.get_by_text("It shows", exact=False).wait_for(timeout=60_000)
    page.get_by_text("s1 · captioner · ok").wait_for(timeout=10_000)  # the step list, with its status
    chat = page.locator("#chat")
    assert MARKUP.replace(" [s1].", "") in chat.inner_text()  # model text shown literally...
    assert chat.locator("b, strong").count() == 0  # ...never rendered as HTML or markdown
    assert chat.locator("img[src='x'], img[src^='http://10.']").count() == 0
    shot = tmp_path / "chat-page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the chat page: {shot}")

    images_before = chat.locator("img").count()
    page.locator("#ask textarea").fill("draw a red bicycle")
    page.keyboard.press("Enter")
    page.get_by_text("s1 · image_generator · ok").wait_for(timeout=60_000)
    page.wait_for_function(f"document.querySelectorAll('#chat img').length > {images_before}", timeout=30_000)
    page.screenshot(path=str(tmp_path / "chat-page-generated.png"), full_page=True)
    assert outside == []  # the page loads nothing from anywhere but this server

    page.locator("#new-conversation").click()
    page.wait_for_function("document.querySelectorAll('#chat img').length == 0", timeout=10_000)
    assert httpx.get(server.url + "/healthz").json()["sessions"] == 0  # its session ended with it
    page.close()


def test_an_error_is_shown_as_a_readable_message(server, browser, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("just some text, not an image")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server.url + "/")
    page.wait_for_selector("#ask textarea", timeout=60_000)
    page.set_input_files("#ask input[type=file]", str(bad))
    page.locator("#ask textarea").fill("what is this?")
    page.keyboard.press("Enter")
    page.get_by_text("looks like text", exact=False).wait_for(timeout=30_000)
    shown = page.locator("#chat").inner_text()
    assert "Error: notes.png: not a supported image, audio or video file (looks like text)" in shown
    page.close()


def test_with_an_api_key_the_page_asks_for_it(tiny_models):
    agent = Agent(tools=[Captioner(model=str(tiny_models.path("blip-caption")))])
    with ServerThread(create_app(agent, ServeSettings(api_key="s3cret", preload=False))) as running:
        page = httpx.get(running.url + "/", follow_redirects=True)
        assert page.status_code == 200 and "s3cret" not in page.text
        config = httpx.get(running.url + "/config")
        assert config.status_code == 401  # nothing of the app is served before the login
