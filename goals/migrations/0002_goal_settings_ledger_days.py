import datetime

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Goal settings per program, the DailyStats day of each ledger entry, and the email claim of notifications."""

    dependencies = [
        ("affiliates", "0001_initial"),
        ("goals", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="GoalSettings",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "month_close_grace_days",
                    models.PositiveSmallIntegerField(
                        default=5,
                        help_text="A month closes this many days after it ends, so late approvals still count.",
                        verbose_name="grace period before a month closes (days)",
                    ),
                ),
                ("notify_affiliates", models.BooleanField(default=True, verbose_name="notify affiliates of their goals")),
                ("notify_managers", models.BooleanField(default=True, verbose_name="notify managers of goals")),
                (
                    "program",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="goal_settings",
                        to="affiliates.program",
                    ),
                ),
            ],
            options={"verbose_name": "goal settings", "verbose_name_plural": "goal settings"},
        ),
        migrations.AddField(
            model_name="notification",
            name="emailed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        # The ledger tables are empty before this migration (nothing awarded them yet); the default only
        # satisfies NOT NULL for the column add.
        migrations.AddField(
            model_name="bonusentry",
            name="day",
            field=models.DateField(default=datetime.date(2000, 1, 1), verbose_name="booked on"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="clawbackentry",
            name="day",
            field=models.DateField(default=datetime.date(2000, 1, 1), verbose_name="booked on"),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="bonusentry",
            index=models.Index(fields=["program", "affiliate", "day"], name="bonus_entry_day_idx"),
        ),
        migrations.AddIndex(
            model_name="clawbackentry",
            index=models.Index(fields=["program", "affiliate", "day"], name="clawback_entry_day_idx"),
        ),
    ]
