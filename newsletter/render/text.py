"""The plain-text part, built from the same content as the HTML.

Readable in any client and by screen readers: 72-column paragraphs, section
headings in capitals, and every link as a numbered reference (``[3]``) listed
at the end, so long URLs never break the flow.  Per-recipient URLs are
placeholders on lines of their own, so wrapping never splits them.
"""

from __future__ import annotations

from newsletter.message import placeholder
from newsletter.render.content import IssueContent, ItemContent
from newsletter.render.markup import WIDTH, LinkRefs, markdown_to_text, wrap
from newsletter.render.theme import Theme

RULE = "-" * WIDTH


def _item(item: ItemContent, refs: LinkRefs) -> list[str]:
    lines: list[str] = []
    label = " · ".join(p for p in ((item.kind or "").upper(), item.source or "") if p)
    if label:
        lines.append(label)
    title = f"{item.title} [{refs.number(item.url)}]" if item.url else item.title
    lines.append(wrap(title))
    if item.byline:
        lines.append(wrap(item.byline))
    blurb = markdown_to_text(item.blurb_md, refs)
    if blurb:
        lines += ["", blurb]
    if item.image and item.image.credit:
        lines += ["", wrap(f"Image: {item.image.credit}")]
    if item.cta_url:
        lines += ["", wrap(f"{item.cta_label} [{refs.number(item.cta_url)}]")]
    elif item.cta_text:
        lines += ["", wrap(item.cta_text)]
    return lines


def _footer(theme: Theme, *, web: bool) -> list[str]:
    lines = [RULE, theme.organisation, wrap(theme.postal_address), ""]
    if web:
        return [*lines, f"Subscribe: {theme.subscribe_url}"]
    return [
        *lines,
        wrap(f"You are receiving this email because you subscribed to the {theme.organisation} "
             "newsletter."),
        f"Manage your preferences: {placeholder('preferences_url')}",
        f"Unsubscribe: {placeholder('unsubscribe_url')}",
    ]  # fmt: skip


def render_text(issue: IssueContent, theme: Theme, *, web: bool = False) -> str:
    """The whole text part for one segment's view of the issue."""
    refs = LinkRefs()
    lines = [theme.organisation.upper(), issue.title, "=" * min(len(issue.title), WIDTH), ""]
    if not web:
        lines += [f"View this email in your browser: {placeholder('web_url')}", ""]
    intro = markdown_to_text(issue.intro_md, refs)
    if intro:
        lines += [intro, ""]
    for section in issue.sections:
        lines += [RULE, wrap(section.heading.upper()), RULE, ""]
        for item in section.items:
            lines += [*_item(item, refs), "", ""]
    if refs.urls:
        lines += [RULE, "Links", "", refs.render(), ""]
    lines += _footer(theme, web=web)
    return "\n".join(lines).rstrip() + "\n"
