"""Render and send the system's own emails (not issues).

Every email is a trio of templates under templates/emails/:
<name>-subject.txt, <name>-body.txt and <name>-body.html.
"""

from __future__ import annotations

from email.utils import formataddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def sender_address(name: str, address: str) -> str:
    """Return "Name <address>": the one way a sender is written in every mail.

    The name is folded to one line (a line break must never start a new
    header), quoted when it holds quotes, commas or other specials, and
    RFC 2047-encoded when it is not ASCII.
    """
    return formataddr((" ".join(name.split()), address))


def email_render(name: str, context: dict) -> tuple[str, str, str]:
    """Return (subject, text body, HTML body) of the named email."""
    context = {"site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    return subject, text, html


def email_send(
    name: str,
    *,
    to: str,
    context: dict,
    from_email: str | None = None,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Render the named email and send it to one address."""
    subject, text, html = email_render(name, context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
        headers=headers or {},
    )
    message.attach_alternative(html, "text/html")
    message.send()
