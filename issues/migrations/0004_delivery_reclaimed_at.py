from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("issues", "0003_delivery_mailing_list")]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="reclaimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
