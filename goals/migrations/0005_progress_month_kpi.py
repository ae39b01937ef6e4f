"""Keep each goal's month and KPI on its progress row, and index a KPI's progress for the board's goal-column sort.

Added nullable, filled from the goal in one UPDATE … FROM (PostgreSQL, and SQLite from 3.33), then made NOT NULL.
"""

from django.db import migrations, models

BACKFILL = """
UPDATE goals_goalprogress SET month = goals_goal.month, kpi = goals_goal.kpi
FROM goals_goal WHERE goals_goal.id = goals_goalprogress.goal_id
"""


class Migration(migrations.Migration):
    dependencies = [("goals", "0004_fillfactor_for_updated_tables")]

    operations = [
        migrations.AddField(
            model_name="goalprogress", name="month", field=models.DateField(null=True, verbose_name="month")
        ),
        migrations.AddField(
            model_name="goalprogress", name="kpi", field=models.CharField(max_length=32, null=True, verbose_name="KPI")
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop, elidable=False),
        migrations.AlterField(model_name="goalprogress", name="month", field=models.DateField(verbose_name="month")),
        migrations.AlterField(
            model_name="goalprogress", name="kpi", field=models.CharField(max_length=32, verbose_name="KPI")
        ),
        migrations.AddIndex(
            model_name="goalprogress",
            index=models.Index(
                fields=["program", "month", "kpi", "progress_provisional", "goal"], name="progress_board_idx"
            ),
        ),
    ]
