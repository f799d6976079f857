"""The one staff navigation: which places a staff member sees, and where they are.

Every page under /editor/ and /admin/ (and our error pages) shows it to
editors and admins; readers' pages keep the public menu.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.utils.functional import SimpleLazyObject

from dwvlist import access
from dwvlist.views import ERROR_PAGE_ATTRIBUTE


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: str = ""  # "page" on the place itself, "true" inside it, "" elsewhere
    badge: str = ""  # a count shown after the label, e.g. unhandled comments
    badge_label: str = ""
    also: tuple[str, ...] = ()  # names of other views that belong to this place


def _url(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _staff_area(path: str) -> bool:
    editor, admin = _url("editor:home") or "/editor/", _url("admin:index") or "/admin/"
    return path.startswith(editor) or path.startswith(admin)


def _unhandled_comments() -> int:
    from issues.models import Comment

    return Comment.objects.filter(status=Comment.Status.UNHANDLED).count()


def _mark_current(items: list[NavItem], path: str) -> list[NavItem]:
    # A place that names the view is where the user is; else the longest link the path starts with.
    try:
        view_name = resolve(path).view_name
    except Resolver404:
        view_name = ""
    best = next((i for i in items if view_name in i.also), None)
    if best is None:
        best = max((i for i in items if path.startswith(i.url)), key=lambda i: len(i.url), default=None)
    if best is None:
        return items
    state = "page" if best.url == path else "true"
    return [NavItem(**{**i.__dict__, "current": state}) if i is best else i for i in items]


def staff_nav_build(*, user, path: str, error_page: bool = False) -> list[NavItem]:
    """Return the navigation items for this user on this path, or [] where none is shown."""
    if user is None or not (error_page or _staff_area(path)) or not access.user_may(user, access.EDITOR):
        return []
    items = [NavItem("Issues", _url("editor:home")), NavItem("New issue", _url("editor:issue_new"))]
    if access.user_may(user, access.COMMENTS):
        unhandled = _unhandled_comments()
        items.append(
            NavItem(
                "Comments",
                _url("comments:list"),
                badge=f"{unhandled:,}" if unhandled else "",
                badge_label=f"{unhandled:,} unhandled" if unhandled else "",
            )
        )
    if access.user_may(user, access.READERS):
        items.append(NavItem("Subscribers", _url("staff:readers")))
    if access.user_may(user, access.SUBSCRIBERS):
        exports = ("staff:export", "staff:job")
        items.append(NavItem("Import and export", _url("staff:import"), also=exports))
        items.append(NavItem("Django admin", _url("admin:index")))
    items.append(NavItem("Archive", _url("archive:index")))
    return _mark_current([i for i in items if i.url], path)


def staff_nav(request):
    """Put the staff navigation in every page of the editor area, the Django admin and our error pages.

    A context processor; worked out only if a template asks for it. The
    error pages (dwvlist.views) mark the request, for they may answer any path.
    """
    error_page = getattr(request, ERROR_PAGE_ATTRIBUTE, False)
    return {
        "staff_nav": SimpleLazyObject(
            lambda: staff_nav_build(user=getattr(request, "user", None), path=request.path, error_page=error_page)
        )
    }
