"""Benchmark provider webhooks against a large ledger: "delivered" events posted as SendGrid batches them.

    .venv/bin/python -m bench.webhook_bench [--events 5000] [--batch 500]

Run it after `python -m bench --transport mailgun -n 1000000`, which leaves
its database (BENCH_DATABASE_URL) holding one issue sent to N readers. Picks
random sent readers, posts a "delivered" event for each (SendGrid's format,
carrying the provider's message id, which webhooks resolve through
SentMessage) to the webhook view in this process, and prints events per
second, the median time to find an event's reader, and how many readers the
events marked delivered. Events are posted once per reader: run it again and
it picks readers not yet marked.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import time
import uuid

SECRET = "bench:webhook-secret"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="events per post")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dwvlist_bench"
    )
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from issues.feedback.events import delivery_find
    from issues.models import Delivery, SentMessage

    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    settings.FEEDBACK_INLINE_SECONDS = 3600.0  # apply every effect in the request, as a quiet server does
    settings.ALLOWED_HOSTS = ["*"]

    ledger = Delivery.objects.count()
    spans = list(
        SentMessage.objects.order_by("?").values_list("provider_message_id", "first_delivery_id", "last_delivery_id")[
            : args.events
        ]
    )
    if not spans:
        print("no sent issue in the bench database: run python -m bench --transport mailgun first")
        return 1
    readers = []
    per_span = max(1, args.events // len(spans))
    for message_id, low, high in spans:
        rows = Delivery.objects.filter(id__range=(low, high), status=Delivery.Status.SENT).order_by("?")[:per_span]
        readers += [(message_id, row.email, row.pk) for row in rows]
    readers = readers[: args.events]

    lookups = []
    for message_id, email, pk in readers[:200]:
        started = time.perf_counter()
        found = delivery_find(message_id=message_id, metadata={}, recipient=email)
        lookups.append(time.perf_counter() - started)
        assert found is not None and found.pk == pk

    client = Client()
    auth = "Basic " + base64.b64encode(SECRET.encode()).decode()
    now = int(time.time())
    started = time.perf_counter()
    for start in range(0, len(readers), args.batch):
        events = [
            {
                "email": email,
                "timestamp": now,
                "event": "delivered",
                "sg_event_id": uuid.uuid4().hex,
                "anymail_id": message_id,
                "response": "250 OK",
            }
            for message_id, email, _ in readers[start : start + args.batch]
        ]
        response = client.post(
            "/webhooks/sendgrid/tracking/", json.dumps(events), content_type="application/json", HTTP_AUTHORIZATION=auth
        )
        assert response.status_code == 200, response.status_code
    wall = time.perf_counter() - started
    delivered = Delivery.objects.filter(pk__in=[pk for _, _, pk in readers], status=Delivery.Status.DELIVERED).count()

    print(f"ledger rows             {ledger:,}")
    print(f"events posted           {len(readers):,} in posts of {args.batch}")
    print(f"wall                    {wall:.1f} s")
    print(f"events/s                {len(readers) / wall:,.0f}")
    print(f"find the reader         median {statistics.median(lookups) * 1000:.2f} ms over {len(lookups)} events")
    print(f"marked delivered        {delivered:,} of {len(readers):,}")
    return 0 if delivered == len(readers) else 1


if __name__ == "__main__":
    raise SystemExit(main())
