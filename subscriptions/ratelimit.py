"""Rate limits held in Redis through Django's cache.

Redis, not the database, because every web process must see the same
counters and a flood should cost us no writes.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from subscriptions.addresses import email_hash


def confirmation_mail_allowed(*, email: str) -> bool:
    """Return True, and hold the address's window, if it may get a confirmation mail now.

    At most one such mail per address per CONFIRMATION_MAIL_INTERVAL
    seconds: cache.add is atomic in Redis (SET NX), so two concurrent
    posts cannot both win.
    """
    interval = settings.CONFIRMATION_MAIL_INTERVAL
    if interval <= 0:
        return True
    return cache.add(f"ratelimit:confirm-mail:{email_hash(email)}", 1, timeout=interval)


def subscribe_post_allowed(*, client: str) -> bool:
    """Count one subscribe post for the client; return False past SUBSCRIBE_POSTS_PER_MINUTE.

    A fixed one-minute window: simple, and a client can never get more
    than twice the limit in any sixty seconds.
    """
    window = int(time.time() // 60)
    key = f"ratelimit:subscribe-posts:{client}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, timeout=120)
        count = 1
    return count <= settings.SUBSCRIBE_POSTS_PER_MINUTE


def command_answer_allowed(*, email: str, command: str) -> bool:
    """Return True, and hold the window, if the address may get an answer to this mail command now.

    One answer per address and command per CONFIRMATION_MAIL_INTERVAL: the
    list's command addresses cannot be used to flood someone's inbox.
    """
    interval = max(settings.CONFIRMATION_MAIL_INTERVAL, 60)
    return cache.add(f"ratelimit:command-answer:{command}:{email_hash(email)}", 1, timeout=interval)
