from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("goals", "0002_goal_settings_ledger_days"),
    ]

    operations = [
        # The new index starts with (program, month), so it serves every query the old one did.
        migrations.AddIndex(
            model_name="goal",
            index=models.Index(fields=["program", "month", "kpi", "affiliate"], name="goal_board_idx"),
        ),
        migrations.RemoveIndex(
            model_name="goal",
            name="goal_month_idx",
        ),
    ]
