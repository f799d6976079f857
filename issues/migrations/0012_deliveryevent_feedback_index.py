# Built CONCURRENTLY on PostgreSQL: the events table can hold millions of
# rows while webhooks keep writing to it.

from django.db import migrations, models

from dwvlist.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("issues", "0011_delivery_failures_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(
                condition=models.Q(("event_type__in", ["bounced", "soft_bounced", "deferred", "complained"])),
                fields=["delivery"],
                include=["event_type", "provider", "id"],
                name="deliveryevent_feedback",
            ),
        ),
    ]
