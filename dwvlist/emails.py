"""Render and send the system's own emails (not issues).

Every email is a trio of templates under templates/emails/:
<name>-subject.txt, <name>-body.txt and <name>-body.html. The subject and
the text body are plain text: never HTML-escaped.
"""

from __future__ import annotations

from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context
from django.template.loader import get_template, render_to_string

from dwvlist.mail import PreparedMessage
from dwvlist.mailwire import MessageTemplate, address_display, address_header, domain_wire, header_line


def _plain_render(name: str, context: dict) -> str:
    """Render a plain-text template with autoescaping off, whatever the template says."""
    return get_template(name).template.render(Context(context, autoescape=False))


def sender_address(name: str, address: str) -> str:
    """Return "Name <address>": the one way a sender is written in every mail.

    The name is folded to one line (a line break must never start a new
    header) and quoted when it holds quotes, commas or other specials. It
    stays Unicode: the encoder that writes the mail (dwvlist.mailwire, or an
    ESP's API) encodes it, in RFC 2047 words of at most 75 characters.
    """
    return address_display(" ".join(name.split()), address)


def email_render(name: str, context: dict) -> tuple[str, str, str]:
    """Return (subject, text body, HTML body) of the named email."""
    context = {"site_url": settings.SITE_URL, **context}
    subject = " ".join(_plain_render(f"emails/{name}-subject.txt", context).split())
    text = _plain_render(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    return subject, text, html


def reply_subject(subject: str, *, default: str = "your letter") -> str:
    """Return the subject of a reply: "Re: " once, never "Re: Re: "."""
    subject = " ".join(subject.split()) or default
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def email_send(
    name: str,
    *,
    to: str,
    context: dict,
    to_name: str = "",
    from_email: str | None = None,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Render the named email and send it to one address.

    `from_email` is "Name <address>" as Unicode (address_display). An ESP's
    API gets the values as they are and encodes them itself; Django's own
    backends get the bytes our encoder builds (dwvlist.mailwire).
    """
    subject, text, html = email_render(name, context)
    from_name, from_address = parseaddr(from_email or settings.DEFAULT_FROM_EMAIL)
    if settings.EMAIL_BACKEND.startswith("anymail."):
        message = EmailMultiAlternatives(
            subject=subject,
            body=text,
            from_email=address_display(from_name, from_address),
            to=[address_display(to_name, to)],
            reply_to=[reply_to] if reply_to else None,
            headers=headers or {},
        )
        message.attach_alternative(html, "text/html")
        message.send()
        return
    message = PreparedMessage(
        subject=subject,
        body=text,
        from_email=address_display(from_name, from_address),
        to=[address_display(to_name, to)],
        reply_to=[reply_to] if reply_to else None,
        headers=headers or {},
    )
    message.attach_alternative(html, "text/html")
    template = MessageTemplate(
        from_line=address_header("From", from_name, from_address),
        subject_line=header_line("Subject", subject),
        reply_to_line=address_header("Reply-To", "", reply_to) if reply_to else "",
        extra_headers={},
    )
    domain = domain_wire(from_address.rpartition("@")[2] or "localhost")
    message.raw = template.render(
        to_name=to_name,
        to=to,
        message_id=make_msgid(domain=domain)[1:-1],
        text=text,
        html=html,
        headers=headers or {},
    )
    message.send()
