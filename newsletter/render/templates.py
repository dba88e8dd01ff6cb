"""Finding and loading the email templates.

The default theme lives in the repository's ``templates/email/`` (beside the
package, so a source checkout and an editable install both find it).  A
``template_dir`` setting is searched first, one file at a time, so a deployment
can override just ``issue.mjml.j2`` and keep the rest.  It may point at a folder
holding ``email/`` (like the repository's ``templates/``) or at the email
templates themselves.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from newsletter.errors import RenderError
from newsletter.render.markup import markdown_to_html

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "email"


def search_path(template_dir: Path | None) -> list[Path]:
    """Folders searched for email templates, override first."""
    folders: list[Path] = []
    if template_dir is not None:
        email = template_dir / "email"
        folders.append(email if email.is_dir() else template_dir)
    folders.append(DEFAULT_TEMPLATES)
    return folders


def _md(source: str, link_color: str = "#0d4a6b") -> Markup:
    """Jinja filter: editor Markdown to sanitised HTML, safe to insert unescaped."""
    return Markup(markdown_to_html(source, link_color=link_color))


@lru_cache(maxsize=8)
def environment(template_dir: Path | None) -> jinja2.Environment:
    """One Jinja environment per template folder (templates compile once per process)."""
    folders = search_path(template_dir)
    if not any((folder / "issue.mjml.j2").is_file() for folder in folders):
        searched = ", ".join(str(f) for f in folders)
        raise RenderError(f"no email templates (issue.mjml.j2) in {searched}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        autoescape=jinja2.select_autoescape(["html", "mjml", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md
    return env


def render_template(name: str, template_dir: Path | None, **context: object) -> str:
    """Render one template; template bugs become a ``RenderError`` naming the file."""
    try:
        return environment(template_dir).get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise RenderError(str(exc), where=f"{where}:{line}" if line else where) from None
