"""The gallery page in a real headless Chromium, against a real server on 127.0.0.1.

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver`` (``.ci/run``
installs them when absent), driven by selenium. Each test serves a fresh store with
``LiveServer`` (uvicorn over ``create_app``, as ``dreamflare serve`` runs it), signs in
through the page's form and does what a person would. Screenshots of the grid and the
detail view go to ``build/screenshots`` (``DREAMFLARE_SCREENSHOTS`` moves them).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from dreamflare_store import NotFound, Store
from dreamflare_store.http.testing import LiveServer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
SCREENSHOTS = Path(os.environ.get("DREAMFLARE_SCREENSHOTS", "build/screenshots"))
HOSTILE = "<img src=x onerror=alert(1)>"
WAIT = 20.0
COLOURS = [(220, 70, 60), (60, 160, 90), (70, 90, 220), (230, 190, 40), (150, 60, 170)]


def render(index: int, prompt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    """A PNG as a generator writes one: a picture, and its parameters in a text chunk."""
    rng = random.Random(index)
    glow = Image.radial_gradient("L").resize(size)
    image = Image.composite(
        Image.new("RGB", size, COLOURS[(index + 2) % len(COLOURS)]),
        Image.new("RGB", size, COLOURS[index % len(COLOURS)]),
        glow,
    )
    pen = ImageDraw.Draw(image)
    for _ in range(7):
        x, y, r = rng.randrange(size[0]), rng.randrange(size[1]), rng.randrange(20, size[1] // 3)
        pen.ellipse((x - r, y - r, x + r, y + r), fill=rng.choice(COLOURS))
    image = image.filter(ImageFilter.GaussianBlur(6))
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7,"
        f" Seed: {1000 + index}, Size: {size[0]}x{size[1]}, Model: dreamshaper_8",
    )
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dreamflare-chromium-")
    options = Options()
    assert CHROMIUM is not None
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Site:
    """A store served on 127.0.0.1, with keys for its users."""

    def __init__(self, store: Store, server: LiveServer) -> None:
        self.store = store
        self.url = server.url
        self.keys: dict[str, str] = {}

    def key(self, user: str) -> str:
        if user not in self.keys:
            self.keys[user] = self.store.generate_api_key(user).api_key
        return self.keys[user]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Store(tmp_path / "store") as store, LiveServer(store) as server:
        yield Site(store, server)


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` never came."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 (elements come and go while the page works)
            last = exc
        else:
            if value:
                return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def sign_in(driver: WebDriver, site: Site, user: str) -> None:
    driver.get(site.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(site.url + "/")
    field = wait_for(lambda: visible(driver, "#apiKey"), "the sign-in form")
    field.send_keys(site.key(user))
    driver.find_element(By.ID, "signin-button").click()
    wait_for(
        lambda: driver.find_element(By.ID, "whoami").get_attribute("textContent") == user,
        "the signed-in user",
    )


def visible(driver: WebDriver, selector: str) -> WebElement | None:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found and found[0].is_displayed() else None


def tiles(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#grid [data-content-id]")


def tile_ids(driver: WebDriver) -> list[str]:
    return [node.get_attribute("data-content-id") or "" for node in tiles(driver)]


def thumbnails_loaded(driver: WebDriver) -> bool:
    """Every tile's <img> has loaded a picture (naturalWidth > 0)."""
    return bool(
        driver.execute_script(
            "var imgs = document.querySelectorAll('#grid [data-content-id] img');"
            "return imgs.length > 0 && Array.prototype.every.call(imgs,"
            " function (i) { return i.complete && i.naturalWidth > 0; });"
        )
    )


def open_detail(driver: WebDriver, content_id: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#grid [data-content-id="{content_id}"] img').click()
    wait_for(lambda: visible(driver, "#detail"), "the detail view")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#versions li"), "the version history")


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 (raises when there is none)
    except NoAlertPresentException:
        return True
    return False


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path


def has_search(site: Site) -> bool:
    return "/content/search" in httpx.get(site.url + "/openapi.json").json()["paths"]


def upload_renders(site: Site, user: str, prompts: list[str]) -> list[str]:
    return [
        site.store.upload(render(i, prompt), user, filename=f"render-{i}.png").content_id
        for i, prompt in enumerate(prompts)
    ]


# -- the tests ----------------------------------------------------------------------------------

PROMPTS = [
    "a lighthouse on a cliff at dusk, volumetric light",
    "portrait of an astronaut cat, studio lighting",
    "a bowl of ramen, macro photography",
    "isometric city block at night, neon signs",
    "watercolor fox in a snowy forest",
]


def test_sign_in_shows_every_upload_with_its_thumbnail(browser: WebDriver, site: Site) -> None:
    ids = upload_renders(site, "alice", PROMPTS)
    sign_in(browser, site, "alice")
    wait_for(lambda: len(tiles(browser)) == len(ids), "every upload in the grid")
    assert tile_ids(browser) == ids[::-1]  # newest first
    wait_for(lambda: thumbnails_loaded(browser), "every thumbnail loaded")
    # The key stays in this tab's sessionStorage: never in a URL, never in a cookie.
    key = site.key("alice")
    assert browser.execute_script("return sessionStorage.getItem('dreamflare.apiKey')") == key
    assert browser.get_cookies() == []
    sources = browser.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#grid img'),"
        " function (i) { return i.src; });"
    )
    assert all("/thumbnail?" in src and "sig=" in src and key not in src for src in sources)
    screenshot(browser, "gallery-grid.png")
    # A grid of thumbnails is API calls, not views.
    site.store.flush()
    assert site.store.get_analytics("alice").views == 0
    assert site.store.get_api_usage("alice").by_operation["thumbnail"]["calls"] >= len(ids)


def test_a_wrong_key_is_a_readable_error(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(site.url + "/")
    wait_for(lambda: visible(browser, "#apiKey"), "the sign-in form").send_keys("dfk_wrong")
    browser.find_element(By.ID, "signin-button").click()
    message = wait_for(lambda: visible(browser, "#message"), "an error message")
    assert "API key" in message.text
    assert visible(browser, "#signin") is not None


def test_search_narrows_the_grid_to_the_matching_prompt(browser: WebDriver, site: Site) -> None:
    if not has_search(site):
        pytest.skip("this server has no /content/search yet")
    ids = upload_renders(site, "alice", PROMPTS)
    sign_in(browser, site, "alice")
    wait_for(lambda: len(tiles(browser)) == len(ids), "every upload in the grid")
    browser.find_element(By.ID, "search").send_keys("astronaut")
    wait_for(lambda: tile_ids(browser) == [ids[1]], "only the astronaut render")
    wait_for(lambda: thumbnails_loaded(browser), "its thumbnail")
    # Facets list the model with its count; clicking one filters by it.
    facet = wait_for(
        lambda: visible(browser, '#facets [data-facet="model"] .facet'), "the model facet"
    )
    assert "dreamshaper_8" in facet.text
    search = browser.find_element(By.ID, "search")
    search.clear()
    search.send_keys(" ")  # an empty query: everything again
    wait_for(lambda: len(tiles(browser)) == len(ids), "everything again")


def test_favorites_star_and_filter(browser: WebDriver, site: Site) -> None:
    if not has_search(site):
        pytest.skip("this server has no favorites yet")
    ids = upload_renders(site, "alice", PROMPTS[:3])
    sign_in(browser, site, "alice")
    wait_for(lambda: len(tiles(browser)) == 3, "the uploads")
    browser.find_element(By.CSS_SELECTOR, f'[data-content-id="{ids[0]}"] .star').click()
    wait_for(
        lambda: (
            browser.find_element(
                By.CSS_SELECTOR, f'[data-content-id="{ids[0]}"] .star'
            ).get_attribute("aria-pressed")
            == "true"
        ),
        "the star to turn on",
    )
    browser.find_element(By.ID, "favorites-only").click()
    wait_for(lambda: tile_ids(browser) == [ids[0]], "only the favorite")


def test_detail_view_shows_the_prompt_and_the_versions(browser: WebDriver, site: Site) -> None:
    (first,) = upload_renders(site, "alice", [PROMPTS[0]])
    site.store.upload(render(7, PROMPTS[0] + ", v2"), "alice", content_id=first)
    site.store.update_metadata(first, "alice", description="the lighthouse, final")
    sign_in(browser, site, "alice")
    wait_for(lambda: tiles(browser), "the grid")
    open_detail(browser, first)
    versions = browser.find_elements(By.CSS_SELECTOR, "#versions li")
    assert [v.get_attribute("data-version") for v in versions] == ["3", "2", "1"]
    wait_for(
        lambda: browser.execute_script(
            "return Array.prototype.every.call(document.querySelectorAll('#versions img'),"
            " function (i) { return i.complete && i.naturalWidth > 0; });"
        ),
        "the version thumbnails",
    )
    image = wait_for(lambda: visible(browser, "#detail-image"), "the full image")
    wait_for(lambda: image.get_property("naturalWidth") == 640, "the full-size image")
    assert browser.find_element(By.ID, "meta-description").get_property("value") == (
        "the lighthouse, final"
    )
    if has_search(site):  # generation records come with the search work
        prompt = wait_for(lambda: visible(browser, '#generation [data-field="prompt"]'), "prompt")
        assert prompt.text == PROMPTS[0] + ", v2"
    screenshot(browser, "gallery-detail.png")
    site.store.flush()
    assert site.store.get_analytics("alice", first).views == 1  # the detail view is the view
    browser.find_element(By.TAG_NAME, "body").send_keys("\ue00c")  # Escape closes it
    wait_for(lambda: visible(browser, "#detail") is None, "the detail view to close")


def test_keyboard_moves_between_items_and_opens_them(browser: WebDriver, site: Site) -> None:
    ids = upload_renders(site, "alice", PROMPTS[:3])
    sign_in(browser, site, "alice")
    wait_for(lambda: len(tiles(browser)) == 3, "the uploads")
    tiles(browser)[0].send_keys("\ue014")  # ArrowRight
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-content-id") == ids[1]
    focused.send_keys("\ue007")  # Enter
    wait_for(lambda: browser.find_element(By.ID, "detail-title").text == "render-1.png", "detail")
    browser.switch_to.active_element.send_keys("\ue00c")  # Escape
    wait_for(lambda: visible(browser, "#detail") is None, "the detail view to close")


def test_file_input_upload_appears_in_the_grid(
    browser: WebDriver, site: Site, tmp_path: Path
) -> None:
    upload_renders(site, "alice", PROMPTS[:1])
    sign_in(browser, site, "alice")
    wait_for(lambda: len(tiles(browser)) == 1, "the first upload")
    files = []
    for index in (3, 4):
        path = tmp_path / f"picked-{index}.png"
        path.write_bytes(render(index, PROMPTS[index]))
        files.append(str(path))
    browser.find_element(By.ID, "file-input").send_keys("\n".join(files))
    wait_for(lambda: len(tiles(browser)) == 3, "both picked files in the grid")
    wait_for(lambda: thumbnails_loaded(browser), "their thumbnails")
    names = sorted(c.filename for c in site.store.list_content("alice").items)
    assert names == ["picked-3.png", "picked-4.png", "render-0.png"]


def test_edit_tags_in_place(browser: WebDriver, site: Site) -> None:
    (content,) = upload_renders(site, "alice", PROMPTS[:1])
    sign_in(browser, site, "alice")
    wait_for(lambda: tiles(browser), "the grid")
    open_detail(browser, content)
    tags = browser.find_element(By.ID, "meta-tags")
    tags.clear()
    tags.send_keys("lighthouse, dusk")
    browser.find_element(By.ID, "meta-save").click()
    wait_for(
        lambda: site.store.get_content(content, "alice").tags == ("lighthouse", "dusk"), "tags"
    )
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#versions li")) == 2, "v2")


def test_share_with_another_user_who_then_sees_it(browser: WebDriver, site: Site) -> None:
    (content,) = upload_renders(site, "alice", PROMPTS[:1])
    site.key("bob")
    sign_in(browser, site, "alice")
    wait_for(lambda: tiles(browser), "the grid")
    open_detail(browser, content)
    browser.find_element(By.ID, "share-user").send_keys("bob")
    browser.find_element(By.ID, "share-button").click()
    wait_for(lambda: "bob" in browser.find_element(By.ID, "shares").text, "bob in the sharing list")
    (collab,) = site.store.list_collaborations("alice")
    assert collab.collaborator_id == "bob" and collab.permissions == "read"
    browser.find_element(By.ID, "detail-close").click()
    browser.find_element(By.ID, "signout-button").click()
    wait_for(lambda: visible(browser, "#apiKey"), "the sign-in form again")
    assert browser.execute_script("return sessionStorage.getItem('dreamflare.apiKey')") is None
    sign_in(browser, site, "bob")
    wait_for(lambda: tile_ids(browser) == [content], "alice's render in bob's gallery")
    wait_for(lambda: thumbnails_loaded(browser), "its thumbnail")
    # Revoking it (as alice) takes it away from bob.
    site.store.delete_collaboration(collab.collaboration_id, "alice")
    sign_in(browser, site, "bob")
    wait_for(lambda: visible(browser, "#empty"), "an empty gallery for bob")


def test_share_without_the_prompt(browser: WebDriver, site: Site) -> None:
    if not has_search(site):
        pytest.skip("this server cannot share without metadata yet")
    (content,) = upload_renders(site, "alice", PROMPTS[:1])
    site.key("carol")
    sign_in(browser, site, "alice")
    wait_for(lambda: tiles(browser), "the grid")
    open_detail(browser, content)
    wait_for(lambda: visible(browser, '#generation [data-field="prompt"]'), "alice sees the prompt")
    browser.find_element(By.ID, "share-user").send_keys("carol")
    browser.find_element(By.ID, "share-strip").click()
    browser.find_element(By.ID, "share-button").click()
    wait_for(lambda: "without prompt" in browser.find_element(By.ID, "shares").text, "listed")
    (collab,) = site.store.list_collaborations("alice")
    assert collab.strip_metadata
    sign_in(browser, site, "carol")
    wait_for(lambda: tile_ids(browser) == [content], "the render in carol's gallery")
    open_detail(browser, content)
    wait_for(
        lambda: "No generation record" in browser.find_element(By.ID, "generation").text, "none"
    )
    assert PROMPTS[0] not in browser.find_element(By.TAG_NAME, "body").text


def test_delete_with_confirmation(browser: WebDriver, site: Site) -> None:
    first, second = upload_renders(site, "alice", PROMPTS[:2])
    sign_in(browser, site, "alice")
    wait_for(lambda: len(tiles(browser)) == 2, "the grid")
    open_detail(browser, first)
    browser.find_element(By.ID, "delete-button").click()
    browser.find_element(By.ID, "delete-no").click()  # a second thought: nothing happens
    assert site.store.get_content(first, "alice").content_id == first
    browser.find_element(By.ID, "delete-button").click()
    browser.find_element(By.ID, "delete-yes").click()
    wait_for(lambda: tile_ids(browser) == [second], "the deleted item gone from the grid")
    with pytest.raises(NotFound):
        site.store.get_content(first, "alice")


def test_a_hostile_prompt_renders_as_text(browser: WebDriver, site: Site) -> None:
    content = site.store.upload(
        render(0, HOSTILE), "alice", description=HOSTILE, tags=["<b>x</b>"], filename="x.png"
    ).content_id
    sign_in(browser, site, "alice")
    wait_for(lambda: tiles(browser), "the grid")
    open_detail(browser, content)
    assert browser.find_element(By.ID, "meta-description").get_property("value") == HOSTILE
    if has_search(site):
        prompt = wait_for(lambda: visible(browser, '#generation [data-field="prompt"]'), "prompt")
        assert prompt.text == HOSTILE
        caption = browser.find_element(By.CSS_SELECTOR, f'[data-content-id="{content}"] .caption')
        assert caption.text == HOSTILE
    time.sleep(0.3)
    assert no_alert(browser)
    # Nothing the content said became an element.
    assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"], b') == []


def test_the_page_is_served_under_a_strict_policy(site: Site) -> None:
    page = httpx.get(site.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text and "onclick" not in page.text  # no inline script
    assert 'name="apiKey"' in page.text
    for name in ("gallery.js", "gallery.css"):
        assert httpx.get(f"{site.url}/gallery/{name}").status_code == 200
    assert httpx.get(f"{site.url}/gallery/../app.py").status_code == 404
    assert httpx.get(f"{site.url}/gallery/secret.txt").status_code == 404


def test_phone_width_is_usable(browser: WebDriver, site: Site) -> None:
    upload_renders(site, "alice", PROMPTS[:4])
    browser.set_window_size(390, 844)
    try:
        sign_in(browser, site, "alice")
        wait_for(lambda: len(tiles(browser)) == 4, "the grid")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling
        columns = {tile.location["x"] for tile in tiles(browser)}
        assert len(columns) == 2
        screenshot(browser, "gallery-phone.png")
    finally:
        browser.set_window_size(1280, 900)


def test_a_real_dreamflare_serve_with_its_first_key(browser: WebDriver, tmp_path: Path) -> None:
    """The whole way a person goes: `dreamflare serve --warm-thumbnails` on a store, the
    key it prints, the gallery it serves, a render uploaded through the page."""
    import socket
    import subprocess
    import sys
    import threading

    with Store(tmp_path / "store") as store:
        first = store.upload(render(0, PROMPTS[0]), "alice", filename="first.png").content_id
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DREAMFLARE_USER": "alice", "PYTHONUNBUFFERED": "1"}
    command = "from dreamflare_store.cli import main; main()"
    args = ["--store", str(tmp_path / "store"), "serve", "--port", str(port), "--warm-thumbnails"]
    proc = subprocess.Popen(
        [sys.executable, "-c", command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        key = wait_for(
            lambda: next((ln.strip() for ln in lines if ln.strip().startswith("dfk_")), None),
            "the first key printed by dreamflare serve",
        )
        url = f"http://127.0.0.1:{port}"
        assert any(f"gallery: {url}/" in line for line in lines)
        wait_for(lambda: httpx.get(url + "/health").status_code == 200, "the server")
        browser.get(url + "/")
        browser.execute_script("sessionStorage.clear()")
        browser.get(url + "/")
        wait_for(lambda: visible(browser, "#apiKey"), "the sign-in form").send_keys(key)
        browser.find_element(By.ID, "signin-button").click()
        wait_for(lambda: tile_ids(browser) == [first], "the stored render")
        wait_for(lambda: thumbnails_loaded(browser), "its thumbnail")
        picked = tmp_path / "picked.png"
        picked.write_bytes(render(3, PROMPTS[3]))
        browser.find_element(By.ID, "file-input").send_keys(str(picked))
        wait_for(lambda: len(tiles(browser)) == 2, "the uploaded render")
        wait_for(lambda: thumbnails_loaded(browser), "both thumbnails")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    with Store(tmp_path / "store") as store:
        names = {c.filename for c in store.list_content("alice").items}
        assert names == {"first.png", "picked.png"}
        # --warm-thumbnails made the upload's 256 px thumbnail (the page asked for it too).
        assert len(list((tmp_path / "store" / "derived" / "thumbs").glob("*/*"))) == 2
