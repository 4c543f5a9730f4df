"""Browser tests: the node served by waitress on 127.0.0.1, driven by headless Debian Chromium.

Every test in this folder is marked `browser`; all of them are skipped when /usr/bin/chromium is
missing (CI installs it). Playwright never downloads a browser here: Debian's Chromium is used as it is.
Screenshots are kept in `test-artifacts/screenshots/<test>-<step>.png` at the repository root.
"""

from __future__ import annotations

import re
import struct
import threading
from contextlib import contextmanager
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PASSWORD  # tests/conftest.py, imported by pytest as the top-level `conftest`

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parents[1] / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}


def pytest_collection_modifyitems(config, items):
    """Mark this folder's tests `browser`; skip them all when there is no system Chromium."""
    missing = pytest.mark.skip(reason=f"{CHROMIUM} not found: install Debian's chromium to run browser tests")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(missing)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except Exception:
        pw.stop()
        raise
    yield chromium
    chromium.close()
    pw.stop()


@dataclass
class LiveNode:
    """A node app served over real HTTP: `url` is its base, `node` the opened Node (same process)."""

    url: str
    app: object
    node_dir: Path

    @property
    def node(self):
        return self.app.extensions["motcua_node"]


@contextmanager
def serve(app, name: str = "waitress-browser-test"):
    """`app` served by waitress on 127.0.0.1 in a daemon thread (yields its URL); stopped from inside its loop."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4, asyncore_loop_timeout=0.2)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        def stop() -> None:  # runs inside the server's loop: closing sockets from outside races its select()
            for channel in list(server._map.values()):
                if channel is not server and channel is not server.trigger:
                    channel.handle_close()
            server.close()

        server.trigger.pull_trigger(stop)
        thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=5)
        assert not thread.is_alive(), "the test server did not stop"


@pytest.fixture
def live_node(node_dir, clock):
    """The node web app (CSRF on, as in production) served by waitress in a daemon thread."""
    from node.web import create_app

    app = create_app({"DATA_DIR": str(node_dir), "WTF_CSRF_ENABLED": True, "NOW": clock})
    try:
        with serve(app) as url:
            yield LiveNode(url=url, app=app, node_dir=node_dir)
    finally:
        app.extensions["motcua_node"].close()


@pytest.fixture
def page(browser, live_node):
    """A fresh browser context (no cookies) at 1366x768, Vietnamese locale; closed before the server."""
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", base_url=live_node.url)
    context.set_default_timeout(10_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def shot(request, page):
    """`shot("step")` saves a full-page screenshot as test-artifacts/screenshots/<test>-<step>.png
    (of the test's page, or of `of=` another tab such as a print view)."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(step: str, of=None) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{test}-{step}.png"
        (of or page).screenshot(path=str(path), full_page=True)
        return path

    return take


def log_in(page, role: str, password: str = PASSWORD) -> None:
    """Log in as `<role>1` through the login form and wait until the app has moved on."""
    page.goto("/login")
    page.fill("input[name=username]", f"{role}1")
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")


def log_out(page) -> None:
    """Log out through the header button (a POST carrying the CSRF token)."""
    with page.expect_navigation():
        page.click("header.top form button[type=submit]")
    assert page.url.endswith("/login")


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A small, real (decodable) RGB PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((40 * x % 256, 90, (200 - 30 * y) % 256)) for x in range(width))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def do_action(page, name: str, fill=None) -> None:
    """Open the dossier page's <details> for action `name`, let `fill(form)` fill it, submit, expect success."""
    from playwright.sync_api import expect

    form = page.locator(f"#form-{name}")
    if not form.is_visible():
        page.click(f"summary.action-{name}")
    expect(form).to_be_visible()
    if fill is not None:
        fill(form)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    expect(page.locator(".flash.success")).to_have_text("Đã lưu.")
