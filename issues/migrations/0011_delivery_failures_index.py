# Built CONCURRENTLY on PostgreSQL: the ledger can hold tens of millions of
# rows while issues are being sent.

from django.db import migrations, models

from dwvlist.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("issues", "0010_issue_preheader"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status__in", ["failed", "bounced", "complained"])),
                fields=["issue", "status"],
                name="delivery_failures",
            ),
        ),
    ]
