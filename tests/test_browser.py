"""The latent sliders of notebook 07 in a real JupyterLab, driven by headless Chromium.

Starts JupyterLab on 127.0.0.1 with a token, opens a copy of 07_exploring_the_latent_space in Debian's Chromium
(Playwright with ``executable_path``: no browser is ever downloaded), runs all cells, moves a latent slider with
the keyboard and checks that the decoded image changed. Saves a screenshot to a temporary folder; set
``VAE_LESSON_SCREENSHOT=images/browser_latent_sliders.png`` to refresh the README's picture deliberately.
JupyterLab is stopped in a ``finally``, pass or fail.

Needs ``apt-get install chromium`` (``.ci/run`` does it). Without it the test is skipped locally, with that
hint; under ``CI=true`` a missing browser is a failure.
"""

import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.browser

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOK = ROOT / "notebooks" / "07_exploring_the_latent_space.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'


def require_browser():
    problems = []
    if not os.path.exists(CHROMIUM):
        problems.append("no Chromium: apt-get install chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("no playwright: pip install -r requirements.txt")
    if problems:
        message = "browser test cannot run: " + "; ".join(problems)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(workdir: pathlib.Path, port: int, token: str) -> subprocess.Popen:
    settings = workdir / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(workdir / "lab-settings"), VAE_LESSON_PROGRESS="0")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}", "--allow-root"]
    log = open(workdir / "lab.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("JupyterLab exited before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not listen on port {port} within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_latent_slider_changes_the_decoded_image_in_jupyterlab(tmp_path):
    require_browser()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)  # Lab autosaves: never drive the committed file
    port, token = free_port(), secrets.token_hex(16)
    lab = start_lab(tmp_path, port, token)
    try:
        wait_for_port(port, lab)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}")
                page.wait_for_selector(IDLE, timeout=120_000)
                try:  # Lab may ask which kernel to start; the notebook's own one is preselected
                    page.locator('.jp-Dialog button:has-text("Select")').first.click(timeout=5_000)
                    page.wait_for_selector(IDLE, timeout=120_000)
                except PlaywrightTimeout:
                    pass
                page.click('#jp-MainMenu .lm-MenuBar-item:has-text("Run")')
                page.click('.lm-Menu-item[data-command="runmenu:run-all"]')
                widget = page.locator(".jp-OutputArea-output > .jupyter-widgets").first
                widget.wait_for(timeout=300_000)  # the first widget cell has run
                last = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").last
                page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=last.element_handle(),
                                       timeout=300_000)  # ...and so has the last cell
                page.wait_for_selector(IDLE, timeout=60_000)
                widget.scroll_into_view_if_needed()
                image = widget.locator(".widget-image").first
                readout = widget.locator(".widget-readout").first
                before_src, before_pixels = image.get_attribute("src"), image.screenshot()
                before_readout = readout.inner_text()
                widget.locator(".noUi-handle").first.focus()
                for _ in range(8):
                    page.keyboard.press("ArrowRight")
                page.wait_for_function("([el, old]) => el.getAttribute('src') !== old",
                                       arg=[image.element_handle(), before_src], timeout=20_000)
                page.wait_for_timeout(500)
                assert readout.inner_text() != before_readout, "the slider did not move"
                assert image.screenshot() != before_pixels, "the decoded image did not change"
                widget.screenshot(path=os.environ.get("VAE_LESSON_SCREENSHOT") or str(tmp_path / "sliders.png"))
            finally:
                browser.close()
    finally:
        stop(lab)
    assert lab.poll() is not None, "JupyterLab is still running"
