from django.db import migrations, models
from django.db.models.functions import Lower


class Migration(migrations.Migration):
    dependencies = [
        ("affiliates", "0002_affiliate_login_ip_hash"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="affiliate",
            index=models.Index(models.F("program"), Lower("name"), models.F("id"), name="affiliate_name_idx"),
        ),
        migrations.AddIndex(
            model_name="affiliate",
            index=models.Index(
                models.F("program"), models.F("tier"), Lower("name"), models.F("id"), name="affiliate_tier_name_idx"
            ),
        ),
    ]
