# Built CONCURRENTLY on PostgreSQL: the events table can hold millions of
# rows while webhooks keep writing to it.

from django.db import migrations, models

from dwvlist.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("issues", "0012_deliveryevent_feedback_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(fields=["received_at", "id"], name="deliveryevent_received"),
        ),
    ]
