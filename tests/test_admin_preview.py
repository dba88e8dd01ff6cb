"""The editor's preview: its frames' headers, the dark and text variants, and the inbox line."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from issue_helpers import THEME, issue_42

from newsletter.admin.routes.issues import preview_csp
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues.preview import as_dark, inbox_snippet
from newsletter.render import Renderer, render_issue
from tests.admin_helpers import fast_hashing, load_issue_42, signed_in_client  # noqa: F401

FRAGMENT = {"X-Admin-Fragment": "1"}


def test_images_over_plain_http_show_when_the_site_itself_is_plain_http() -> None:
    local = preview_csp("http://127.0.0.1:8000")
    public = preview_csp("https://news.example.org")
    assert "img-src https: http: data:" in local
    assert "img-src https: data:;" in public and "http:" not in public.replace("https:", "")


def test_the_inbox_snippet_is_the_preheader_or_the_first_words() -> None:
    html = render_issue(issue_42(), theme=THEME, renderer=Renderer()).html
    assert inbox_snippet(html) == (
        "How states are writing personalized learning into their ESSA plans, a case study "
        "for English learners, and more."
    )  # the padding after it keeps the body's first words out of the line
    bare = render_issue(replace(issue_42(), preheader=""), theme=THEME, renderer=Renderer())
    assert inbox_snippet(bare.html).startswith(
        "KnowledgeWorks · April 2018 · View in your browser KnowledgeWorks Issue 42: April 2018"
    )
    assert len(inbox_snippet(bare.html)) <= 140


def test_the_dark_variant_turns_the_dark_styles_on() -> None:
    html = render_issue(issue_42(), theme=THEME, renderer=Renderer()).html
    assert "@media (prefers-color-scheme: dark)" in html
    dark = as_dark(html)
    assert "prefers-color-scheme" not in dark and dark.count("@media all {") == 1


def test_preview_variants_and_the_inbox_tab(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    text = client.get("/admin/issues/42/preview.txt")
    assert text.headers["content-type"].startswith("text/plain")
    assert "Issue 42: April 2018\n====" in text.text and "%%" not in text.text
    dark = client.get("/admin/issues/42/preview?scheme=dark").text
    assert "@media all {" in dark and "prefers-color-scheme: dark" not in dark
    assert client.get("/admin/issues/42/preview?scheme=sepia").status_code == 422

    page = client.get("/admin/issues/42").text
    tabs = re.findall(r'role="tab"[^>]*>([^<]+)</button>', page)
    assert tabs == ["Desktop 600 px", "Mobile 375 px", "Dark mode", "Plain text", "Inbox"]
    assert page.count('role="tabpanel"') == 5 and page.count("hidden>") >= 4  # one shown
    assert 'tabindex="-1"' in re.search(r"<iframe[^>]*>", page).group(0)  # type: ignore[union-attr]
    inbox = page[page.index('id="inbox-preview"') :]
    assert "KnowledgeWorks Newsletter &lt;newsletter@example.org&gt;" in inbox
    assert "Issue 42: ESSA plans, equity by design" in inbox

    saved = client.form("/admin/issues/42/details", {
        "title": "Issue 42: April 2018", "subject": "A sharper subject", "date": "2018-04-01",
        "preheader": "",
    }, headers=FRAGMENT)  # fmt: skip
    following = saved.text[saved.text.index('<template id="inbox-next">') :]
    assert "A sharper subject" in following
    assert "None: inboxes show the email's first words instead" in following
    assert "KnowledgeWorks · April 2018 · View in your browser" in following
