"""Every page of the app in real Chromium: axe-core, 390 px phones, the preview, the keyboard.

The pages come from the app's own routers, so a new page is checked the day it
is added (or the test says which parameter it needs).  One realistic site (Issue 42
sent to subscribers, Issue 43 ready, scheduled and still editable; see ``realistic_site``) and one
browser serve the whole module.  axe-core must find no serious or critical
violation on any page, as an editor or an admin, at desktop and phone widths;
no admin page may scroll sideways at 390 px; the editor's preview shows one true
600 or 375 px frame at a time, sized to the whole email; and every admin task,
from signing in to sending, is done here with the keyboard alone, each focused
element ringed by an outline of at least 3:1 contrast.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter import admin
from newsletter.admin import drafting
from newsletter.issues import store
from newsletter.models import Campaign, Issue
from newsletter.sending import service
from newsletter.web import ROUTERS
from tests.admin_helpers import fast_hashing  # noqa: F401 - autouse fixture
from tests.browser.realistic_site import (
    ADMIN,
    EDITOR,
    PASSWORD,
    Site,
    chromium_browser,
    isolated_env,
    new_page,
    running_site,
    serious_violations,
    sign_in,
)

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python.sync_playwright")
expect = playwright_api.expect

DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}
# GET routes that answer something other than a page of their own, and where each is checked.
NOT_PAGES = {
    "/": "a redirect to /subscribe",
    "/api/topics": "JSON (tests/test_web.py)",
    "/api/preferences/{token}": "JSON (tests/test_web.py)",
    "/archive/feed.xml": "RSS (tests/test_archive.py)",
    "/admin/api/resources": "JSON",
    "/api/v1/subscribers": "JSON for API tokens (tests/test_api_tokens.py)",
    "/api/v1/subscribers/{subscriber_id}": "JSON for API tokens",
    "/api/v1/campaigns": "JSON for API tokens",
    "/api/v1/campaigns/{campaign_id}": "JSON for API tokens",
    "/api/v1/campaigns/{campaign_id}/report": "JSON for API tokens",
    "/admin/api/campaigns/{campaign_id:int}/progress": "JSON, polled by the campaign page",
    "/admin/api/jobs/{job_id:int}": "JSON, polled by the import job page",
    "/admin/issues/{number:int}/picker": "a fragment of the editor, checked inside it",
    "/admin/issues/{number:int}/preview": "the email itself: checked as the email below",
    "/admin/issues/{number:int}/preview.txt": "plain text",
    "/admin/issues/{number:int}/export": "a YAML download",
    "/admin/subscribers/export.csv": "a CSV download",
    "/media/{name}": "an uploaded image file (tests/test_editing.py)",
    "/admin/campaigns/{campaign_id:int}/results.csv": "a CSV download (tests/test_insights.py)",
    "/admin/campaigns/{campaign_id:int}/clickmap.png": "the click map's image, shown on the "
    "campaign page (tests/browser/test_clickmap_browser.py)",
}
# Extra states of pages already listed: an error, a search, a refusal.
EXTRA_STATES = {
    "public": ["/archive/999"],
    "admin": [
        "/admin/issues/999",
        "/admin/issues/43?q=equity",
        "/admin/subscribers?q=reader1",
        "/admin/library?q=equity",
        "/admin/library?featured=recent&sort=ctr",
        "/admin/campaigns/1?sort=clicks&dir=desc",
    ],
}


# --- the site, the browser, the pages ------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("a11y-site")
    with isolated_env(folder), running_site(folder, seeds_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as instance:
        yield instance


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context per test; any console error (a CSP refusal included) fails it."""
    tab = new_page(browser, DESKTOP)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("dialog", lambda d: d.accept())  # data-confirm: the person said yes
    try:
        yield tab
    finally:
        tab.context.close()
    # The error pages visited on purpose (404, 403, a refused login) log their status.
    refusals = "Failed to load resource: the server responded with a status of 4"
    assert [e for e in errors if not e.startswith(refusals)] == []


def page_routes() -> list[str]:
    """Every GET route of the app that answers a page (the routers ``create_app`` includes)."""
    paths = [
        route.path
        for router in [*ROUTERS, *admin.routers()]
        for route in router.routes
        if "GET" in getattr(route, "methods", ())
    ]
    stale = set(NOT_PAGES) - set(paths)
    assert not stale, f"NOT_PAGES names routes that no longer exist: {sorted(stale)}"
    return [p for p in paths if p not in NOT_PAGES]


def _values(site: Site, path: str, name: str) -> list[str]:
    """Real values for one path parameter (several when the page has several states)."""
    if name == "token":
        kind = {"/confirm": "confirm", "/preferences": "preferences", "/u": "unsubscribe"}
        token_url = site.tokens[kind[path.split("/{")[0]]]
        return [token_url.rsplit("/", 1)[1]]
    if name == "number":
        return ["42"] if path.startswith("/archive") else ["42", "43"]  # sent, and in the works
    if name == "campaign_id":
        return [str(site.ids["campaign_id"]), str(site.ids["scheduled_id"])]
    return [str(site.ids[name])]


def urls_for(site: Site, path: str) -> list[str]:
    names = re.findall(r"\{(\w+)(?::\w+)?\}", path)
    urls = [path]
    for name in names:
        assert name in {"token", "number", *site.ids}, (
            f"{path}: no test value for {{{name}}}; add one to realistic_site, or the route to NOT_PAGES"
        )
        urls = [re.sub(r"\{" + name + r"(:\w+)?\}", value, url, count=1)
                for url in urls for value in _values(site, path, name)]  # fmt: skip
    return urls


def all_urls(site: Site) -> dict[str, list[str]]:
    public, admin_pages = [], []
    for path in page_routes():
        (admin_pages if path.startswith("/admin") else public).extend(urls_for(site, path))
    return {
        "public": [*public, *EXTRA_STATES["public"]],
        "admin": [u for u in [*admin_pages, *EXTRA_STATES["admin"]] if u != "/admin/login"],
    }


def check_pages(page: Any, site: Site, urls: list[str]) -> dict[str, list[str]]:
    report = {}
    for url in urls:
        page.goto(site.url + url)
        assert "/admin/login" not in page.url or url == "/admin/login", url  # reached, not bounced
        if found := serious_violations(page):
            report[url] = found
    return report


# --- axe on every page ----------------------------------------------------------------------


def test_the_page_list_covers_every_route(site: Site) -> None:
    urls = all_urls(site)
    assert len(urls["public"]) >= 7 and len(urls["admin"]) >= 15
    assert "/archive/42" in urls["public"] and "/admin/campaigns/1" in urls["admin"]


def test_no_serious_violation_on_public_pages(page: Any, site: Site) -> None:
    urls = ["/admin/login", *all_urls(site)["public"]]  # the login form: the only open admin page
    assert check_pages(page, site, urls) == {}
    page.goto(site.url + "/admin/login")
    page.get_by_label("Email address").fill(EDITOR)
    page.get_by_label("Password").fill("wrong password, on purpose")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(".alert")
    assert serious_violations(page) == []  # the refusal, too


def test_no_serious_violation_on_admin_pages_as_admin(page: Any, site: Site) -> None:
    sign_in(page, site, ADMIN)
    assert check_pages(page, site, all_urls(site)["admin"]) == {}


def test_no_serious_violation_on_editor_pages_as_editor(page: Any, site: Site) -> None:
    sign_in(page, site, EDITOR)
    urls = [u for u in all_urls(site)["admin"] if u.startswith(("/admin/issues", "/admin/library"))]
    assert check_pages(page, site, ["/admin", *urls, "/admin/settings"]) == {}  # a refusal too


def test_no_serious_violation_in_the_email_and_its_web_version(page: Any, site: Site) -> None:
    sign_in(page, site, EDITOR)
    for scheme in ("light", "dark"):  # the email as the editor's preview serves it
        answer = page.request.get(f"{site.url}/admin/issues/42/preview?scheme={scheme}")
        assert answer.ok
        page.goto("about:blank")  # axe cannot run in the preview's sandbox; no admin CSP either
        page.set_content(answer.text(), wait_until="load")
        assert page.locator("h1").inner_text() == "Issue 42: April 2018"
        assert serious_violations(page) == [], scheme
    page.goto(site.url + "/archive/42")
    assert page.locator("h2").count() == 3 and serious_violations(page) == []


# --- phones ------------------------------------------------------------------------------------

WIDEST = """() => {
  const width = document.documentElement.clientWidth, wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) wide.push(`${el.tagName}.${el.className} ${Math.round(box.right)}px`);
  }
  return wide.slice(0, 4);
}"""


def test_no_admin_page_scrolls_sideways_at_390_px(page: Any, site: Site) -> None:
    sign_in(page, site, ADMIN)
    page.set_viewport_size(PHONE)
    wide, found = {}, {}
    for url in all_urls(site)["admin"]:
        page.goto(site.url + url)
        if page.evaluate("document.documentElement.scrollWidth") > PHONE["width"]:
            wide[url] = page.evaluate(WIDEST)
        if problems := serious_violations(page):
            found[url] = problems
    assert wide == {} and found == {}


# --- the editor's preview -------------------------------------------------------------------

FRAMES = """() => [...document.querySelectorAll('iframe[data-preview]')].map(f => ({
  name: f.dataset.preview, shown: f.offsetParent !== null, width: f.clientWidth,
  inner: f.contentWindow.innerWidth, height: f.clientHeight,
  content: f.contentDocument ? f.contentDocument.documentElement.scrollHeight : 0,
  text: f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText.slice(0, 20000) : ''}))"""


def frames(page: Any) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in page.evaluate(FRAMES)}


def show_tab(page: Any, name: str) -> dict[str, Any]:
    """Click a tab; the one frame shown, once it has loaded and been sized."""
    page.get_by_role("tab", name=name).click()
    panel = page.locator("[role=tabpanel]:visible")
    expect(panel).to_have_count(1)
    key = panel.get_attribute("data-panel")
    if key != "inbox":
        page.wait_for_function(
            f"() => {{ const f = document.querySelector('iframe[data-preview={key}]');"
            " return f.contentDocument && f.contentDocument.URL.includes('/preview')"
            " && f.contentDocument.readyState === 'complete'"
            " && f.clientHeight >= f.contentDocument.documentElement.scrollHeight - 1"
            " && f.clientHeight > 300; }"
        )
        return frames(page)[key]
    return {}


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    """A plain-http image host on this machine, as in local use (for the module's later tests)."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="400" height="300" fill="#5e7f95"/></svg>'

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "image/svg+xml")
            self.send_header("content-length", str(len(svg)))
            self.end_headers()
            self.wfile.write(svg)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_preview_shows_one_whole_email_at_a_time(
    page: Any, site: Site, image_server: str, shots: Path
) -> None:
    with site.db.session() as session:  # Issue 43's first card: an image over plain http
        issue = store.get_issue(43, session=session)
        first = issue.sections[0].items[0]
        drafting.update_item(
            issue, first.id, {"image_url": f"{image_server}/cover.svg"}, session=session
        )
    sign_in(page, site, EDITOR)
    page.goto(site.url + "/admin/issues/43")
    desktop = show_tab(page, "Desktop 600 px")
    assert (desktop["width"], desktop["inner"]) == (600, 600)  # a true 600 px viewport
    assert desktop["height"] >= desktop["content"] > 2000  # the whole email, no inner scroll
    assert [f["name"] for f in frames(page).values() if f["shown"]] == ["desktop"]
    local = page.frame_locator("iframe[data-preview=desktop]").locator(
        f"img[src^='{image_server}']"
    )
    assert local.evaluate("img => img.complete && img.naturalWidth") == 400  # not blocked by CSP
    page.locator(".editor-preview").screenshot(path=str(shots / "preview-desktop.png"))

    mobile = show_tab(page, "Mobile 375 px")
    assert (mobile["width"], mobile["inner"]) == (375, 375)
    assert "Issue 43: May 2018" in mobile["text"] and mobile["height"] > desktop["height"]
    page.locator(".editor-preview").screenshot(path=str(shots / "preview-mobile.png"))
    dark = show_tab(page, "Dark mode")
    card = page.frame_locator("iframe[data-preview=dark]").locator(".nl-card").first
    assert card.evaluate("c => getComputedStyle(c).backgroundColor") == "rgb(27, 34, 40)"
    assert dark["inner"] == 600
    page.locator(".editor-preview").screenshot(path=str(shots / "preview-dark.png"))
    text = show_tab(page, "Plain text")
    assert "POLICY & ESSA" in text["text"] and "Unsubscribe: http" in text["text"]
    show_tab(page, "Inbox")
    inbox = page.locator("#inbox-preview")
    assert "Issue 43: more on personalized learning" in inbox.inner_text()
    page.locator(".editor-preview").screenshot(path=str(shots / "preview-inbox.png"))
    assert [f["name"] for f in frames(page).values() if f["shown"]] == []

    # the inbox line follows the details as they are typed (autosave)
    page.get_by_label("Email subject").fill("Issue 43: a subject typed just now")
    expect(inbox).to_contain_text("Issue 43: a subject typed just now", timeout=10_000)


def test_the_preview_frame_is_out_of_the_tab_order_until_entered(page: Any, site: Site) -> None:
    sign_in(page, site, EDITOR)
    page.goto(site.url + "/admin/issues/43")
    show_tab(page, "Desktop 600 px")
    page.get_by_role("tab", name="Desktop 600 px").focus()
    page.keyboard.press("ArrowRight")  # tabs move with the arrows, and show their panel
    assert page.evaluate("document.activeElement.id") == "tab-mobile"
    show_tab(page, "Mobile 375 px")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "panel-mobile"
    page.keyboard.press("Tab")  # past the frame and its links: out of the preview
    assert page.evaluate("document.activeElement.closest('.editor-preview') === null")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "panel-mobile"
    page.keyboard.press("Enter")  # into the email: its first link
    inner = page.frame_locator("iframe[data-preview=mobile]").locator(":focus")
    expect(inner).to_have_text("View in your browser")
    page.keyboard.press("Tab")
    assert "preferences" not in (inner.get_attribute("href") or "")  # moving through the email
    page.keyboard.press("Escape")  # and back out
    assert page.evaluate("document.activeElement.id") == "panel-mobile"
    assert page.locator("iframe[data-preview=mobile]").get_attribute("tabindex") == "-1"


# --- the keyboard alone -----------------------------------------------------------------------

FOCUS_RING = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let node = el.parentElement, behind = [255, 255, 255];
  while (node) { const bg = rgb(getComputedStyle(node).backgroundColor); if (bg.length === 3 || (bg.length === 4 && bg[3] > 0.5)) { behind = bg; break; } node = node.parentElement; }
  const ring = rgb(style.outlineColor), [a, b] = [lum(ring), lum(behind)].sort((x, y) => y - x);
  return {id: el.id, tag: el.tagName, outline: style.outlineStyle, width: parseFloat(style.outlineWidth),
          shadow: style.boxShadow, contrast: (a + 0.05) / (b + 0.05)};
}"""


class Keyboard:
    """Moves with Tab and acts with keys only, checking the focus ring at every stop."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.stops = 0

    def ring_ok(self) -> None:
        ring = self.page.evaluate(FOCUS_RING)
        if ring["tag"] in ("BODY", "IFRAME"):
            return
        self.stops += 1
        visible = ring["outline"] != "none" and ring["width"] >= 2 and ring["contrast"] >= 3
        assert visible or ring["shadow"] != "none", ring

    def to(self, selector: str, *, back: bool = False, limit: int = 150) -> None:
        """Tab (or Shift+Tab) until ``selector`` has the focus."""
        for _ in range(limit):
            if self.page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
            self.page.keyboard.press("Shift+Tab" if back else "Tab")
            self.ring_ok()
        raise AssertionError(f"Tab never reached {selector}")

    def type(self, selector: str, text: str, *, back: bool = False) -> None:
        self.to(selector, back=back)
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(text)

    def press(self, selector: str, key: str = "Enter", *, back: bool = False) -> None:
        self.to(selector, back=back)
        self.page.keyboard.press(key)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)


def keyboard_sign_in(keys: Keyboard, site: Site, email: str) -> None:
    keys.page.goto(site.url + "/admin/login")
    keys.type("#email", email)
    keys.type("#password", PASSWORD)
    keys.keys("Enter")
    keys.page.wait_for_url("**/admin")


def keyboard_build_issue(keys: Keyboard, page: Any) -> None:
    """Create Issue 44, add two sections and two items, reorder them, save the intro."""
    keys.press("nav a[href='/admin/issues']")
    page.wait_for_url("**/admin/issues")
    keys.type("#title", "Issue 44: June 2018")
    keys.type("#subject", "Issue 44: by keyboard alone")
    keys.keys("Enter")
    page.wait_for_url("**/admin/issues/44?done=created")
    for heading in ("Policy & ESSA", "Equity in Practice"):
        keys.type("#new-section", heading)
        keys.keys("Enter")
        page.wait_for_selector(f"#live h3:has-text('{heading}')")
        assert page.evaluate("document.activeElement.id") == "new-section"  # focus kept
    # one item into the first section (the picker's select, by arrow key), two into the last
    for count, (query, to_first) in enumerate((("equity", True), ("scheduling", False),
                                               ("assessment", False)), start=1):  # fmt: skip
        keys.type("#picker-q", query, back=True)
        page.wait_for_selector(f"#picker-results:has-text('found for “{query}”')")
        if to_first:
            keys.press("#picker-results select", "ArrowUp")
        keys.press("#picker-results button[id^=add-]")
        page.wait_for_function(
            "n => document.querySelectorAll('#live .item').length === n", arg=count
        )
    titles = page.locator("#live .item .item-title").all_inner_texts()
    keys.press("#live .section:nth-of-type(2) .item:nth-child(2) button[id$='-up']", back=True)
    expect(page.locator("#live .item .item-title")).to_have_text([titles[0], titles[2], titles[1]])
    assert page.evaluate("document.activeElement.id").endswith("-up")  # focus stays put
    keys.type(
        "#issue-intro", "Welcome to the June issue, put together with the keyboard.", back=True
    )
    keys.press("#save-details")
    expect(page.locator("[data-save-status]")).to_have_text("Saved")
    keys.press("#status", back=True)
    keys.keys("ArrowDown")  # draft -> ready
    keys.press(".status-form button")
    page.wait_for_selector("h1 .badge-ready")


def keyboard_schedule_and_send(keys: Keyboard, page: Any) -> int:
    """Schedule Issue 44 for later, then start that campaign now from its page."""
    keys.press("nav a[href='/admin/campaigns']")
    page.wait_for_url("**/admin/campaigns")
    keys.to("#issue")
    assert page.locator("#issue").input_value() == "44"  # ready issues first, newest first
    keys.press("#when-now", "ArrowDown")  # radio group: to "Schedule for later"
    assert page.locator("#when-later").is_checked()
    keys.to("#at")
    keys.keys(*"12312030")
    keys.keys("Tab", *"0930A")
    assert page.locator("#at").input_value() == "2030-12-31T09:30"
    keys.press(".card button[type=submit]")
    through_review(keys, page, "h1 .badge-scheduled")
    campaign_id = int(page.url.split("/admin/campaigns/")[1].split("?")[0])
    keys.press("#start", back=True)
    through_review(keys, page, "h1 .badge-sending")
    return campaign_id


def through_review(keys: Keyboard, page: Any, then: str) -> None:
    """Where a review step stands before a send or a schedule, confirm it with the keyboard."""
    page.wait_for_selector(f"{then}, #confirm-send")
    if page.locator("#confirm-send").count():
        keys.press("#confirm-send")
        page.wait_for_selector(then)


def test_every_admin_task_by_keyboard_alone(page: Any, site: Site) -> None:
    keys = Keyboard(page)
    keyboard_sign_in(keys, site, EDITOR)
    keyboard_build_issue(keys, page)
    with site.db.session() as session:
        issue = session.scalar(select(Issue).where(Issue.number == 44))
        assert issue is not None and issue.status == "ready"
        assert issue.intro_md == "Welcome to the June issue, put together with the keyboard."
        assert [len(s.items) for s in issue.sections] == [1, 2]
    keys.press("form[action='/admin/logout'] button", back=True)
    page.wait_for_selector("text=You are signed out")

    keyboard_sign_in(keys, site, ADMIN)
    campaign_id = keyboard_schedule_and_send(keys, page)
    service.drain(site.db, site.settings, campaign_id)  # the worker's part
    page.wait_for_selector("h1 .badge-sent", timeout=20_000)  # the page follows by itself
    with site.db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == "sent" and campaign.total_recipients > 0
    assert keys.stops > 40  # the focus ring was checked at every one of them
