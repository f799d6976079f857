# The feedback admin's indexes, built CONCURRENTLY on PostgreSQL: the events
# table can hold millions of rows while webhooks keep writing to it.

from django.db import migrations, models

from dwvlist.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("issues", "0007_deliveryevent_admin_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(fields=["event_type", "-id"], name="deliveryevent_type_newest"),
        ),
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(fields=["message_id"], name="deliveryevent_message_id"),
        ),
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(fields=["event_id"], name="deliveryevent_event_id_prefix", opclasses=["varchar_pattern_ops"]),
        ),
    ]
