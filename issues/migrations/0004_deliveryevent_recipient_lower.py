# Built CONCURRENTLY on PostgreSQL: the events table can hold millions of
# rows while webhooks keep writing to it.

import django.db.models.functions.text
from django.db import migrations, models

from dwvlist.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("issues", "0003_ledger_fillfactor"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(django.db.models.functions.text.Lower("recipient"), name="deliveryevent_recipient_lower"),
        ),
    ]
