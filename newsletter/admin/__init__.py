"""The web admin under ``/admin``: accounts, the library, issue drafting, sending, subscribers.

``routers()`` is what ``newsletter.web.create_app`` includes.  Each router
carries its own access rule (see ``access``): the login form is the only page
that answers without a session, editors reach the library and issues, admins
everything.  The routes are imported when the app is built, not with this
package, so ``newsletter users`` and the web package never import each other
in a circle.
"""

from __future__ import annotations

from fastapi import APIRouter

# The upload forms: the only paths whose bodies may reach ``import_max_bytes``.
UPLOAD_PATHS = ("/admin/library/import", "/admin/subscribers/import")
# An image upload: its own, smaller limit (``image_max_bytes`` plus the form around it).
IMAGE_UPLOAD_PATH = "/admin/media/upload"


def routers() -> list[APIRouter]:
    from newsletter.admin.routes import (
        automation,
        campaigns,
        editing,
        home,
        issues,
        jobs,
        library,
        media,
        sequences,
        settings,
        sources,
        subscribers,
    )

    return [
        home.login_router,
        home.router,
        sources.router,
        library.router,
        editing.router,
        issues.router,
        media.router,
        campaigns.router,
        sequences.router,
        subscribers.router,
        settings.router,
        automation.router,
        jobs.router,
    ]
