"""Index hygiene: drop the single-column indexes no query needs (the composites that start with program_id
serve every per-program query), add the composites and partial indexes the pages and rollups use.

docs/tracking-conversions.md ("Indexes") lists every index and the query it serves. The fields' db_index=False
is a state change only: Django's AlterField would also drop and re-add each foreign key constraint, which
re-validates every row of the table under a lock; dropping the index by its name is all that is needed.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# (table, column, index name) of the indexes Django made for db_index=True, named as its schema editor names them.
DROPPED = [
    ("tracking_click", "affiliate_id", "tracking_click_affiliate_id_ca352892"),
    ("tracking_click", "link_id", "tracking_click_link_id_a7f19eda"),
    ("tracking_click", "offer_id", "tracking_click_offer_id_3647ab19"),
    ("tracking_click", "program_id", "tracking_click_program_id_21bbeb39"),
    ("tracking_conversion", "affiliate_id", "tracking_conversion_affiliate_id_26000fff"),
    ("tracking_conversion", "click_id", "tracking_conversion_click_id_f3ed95b7"),
    ("tracking_conversion", "commission_rule_id", "tracking_conversion_commission_rule_id_c1d52d1e"),
    ("tracking_conversion", "created_at", "tracking_conversion_created_at_10909831"),
    ("tracking_conversion", "in_review", "tracking_conversion_in_review_9f7d4085"),
    ("tracking_conversion", "link_id", "tracking_conversion_link_id_45e42693"),
    ("tracking_conversion", "offer_id", "tracking_conversion_offer_id_196a1a42"),
    ("tracking_conversion", "program_id", "tracking_conversion_program_id_3d7f5bdc"),
    ("tracking_conversion", "status", "tracking_conversion_status_e343288a"),
    ("tracking_conversionevent", "actor_id", "tracking_conversionevent_actor_id_baff8633"),
    ("tracking_conversionevent", "created_at", "tracking_conversionevent_created_at_d9952873"),
    ("tracking_conversionevent", "program_id", "tracking_conversionevent_program_id_2989e8e7"),
    ("tracking_postbackattempt", "conversion_id", "tracking_postbackattempt_conversion_id_7145a0b5"),
    ("tracking_postbackattempt", "created_at", "tracking_postbackattempt_created_at_4d898b8a"),
    ("tracking_postbackattempt", "program_id", "tracking_postbackattempt_program_id_5ba62bd4"),
    ("tracking_postbackattempt", "replay_of_id", "tracking_postbackattempt_replay_of_id_daa79097"),
    ("tracking_statsdirtykey", "affiliate_id", "tracking_statsdirtykey_affiliate_id_3264e356"),
    ("tracking_statsdirtykey", "program_id", "tracking_statsdirtykey_program_id_17c4656e"),
]
# PostgreSQL only: the varchar_pattern_ops index Django adds next to an indexed CharField (LIKE queries).
DROPPED_LIKE = [("tracking_conversion", "status", "tracking_conversion_status_e343288a_like")]


def drop_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for _table, _column, name in DROPPED + DROPPED_LIKE:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def create_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for table, column, name in DROPPED:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)})")
    if schema_editor.connection.vendor == "postgresql":
        for table, column, name in DROPPED_LIKE:
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)} varchar_pattern_ops)"
            )


class Migration(migrations.Migration):

    dependencies = [
        ('affiliates', '0003_affiliate_board_sort_indexes'),
        ('tracking', '0006_conversion_attributed_by_manager'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='click',
                    name='affiliate',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='affiliates.affiliate'),
                ),
                migrations.AlterField(
                    model_name='click',
                    name='link',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tracking.link'),
                ),
                migrations.AlterField(
                    model_name='click',
                    name='offer',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tracking.offer'),
                ),
                migrations.AlterField(
                    model_name='click',
                    name='program',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='affiliates.program'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='affiliate',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='affiliates.affiliate'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='click',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tracking.click', to_field='click_id'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='commission_rule',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tracking.commissionrule'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='created_at',
                    field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='time'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='in_review',
                    field=models.BooleanField(default=False, verbose_name='in review'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='link',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tracking.link'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='offer',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tracking.offer'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='program',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='affiliates.program'),
                ),
                migrations.AlterField(
                    model_name='conversion',
                    name='status',
                    field=models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('reversed', 'Reversed')], default='pending', max_length=16, verbose_name='status'),
                ),
                migrations.AlterField(
                    model_name='conversionevent',
                    name='actor',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='conversionevent',
                    name='created_at',
                    field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='when'),
                ),
                migrations.AlterField(
                    model_name='conversionevent',
                    name='program',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='affiliates.program'),
                ),
                migrations.AlterField(
                    model_name='postbackattempt',
                    name='conversion',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tracking.conversion'),
                ),
                migrations.AlterField(
                    model_name='postbackattempt',
                    name='created_at',
                    field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='received'),
                ),
                migrations.AlterField(
                    model_name='postbackattempt',
                    name='program',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='affiliates.program'),
                ),
                migrations.AlterField(
                    model_name='postbackattempt',
                    name='replay_of',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replays', to='tracking.postbackattempt'),
                ),
                migrations.AlterField(
                    model_name='statsdirtykey',
                    name='affiliate',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='affiliates.affiliate'),
                ),
                migrations.AlterField(
                    model_name='statsdirtykey',
                    name='program',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='affiliates.program'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes, elidable=False)],
        ),
        migrations.AddIndex(
            model_name='conversion',
            index=models.Index(fields=['program', 'created_at'], name='conversion_program_time_idx'),
        ),
        migrations.AddIndex(
            model_name='conversion',
            index=models.Index(condition=models.Q(('in_review', True)), fields=['program', 'created_at'], name='conversion_review_idx'),
        ),
        migrations.AddIndex(
            model_name='conversionevent',
            index=models.Index(condition=models.Q(('to_status', 'reversed')), fields=['program', 'created_at'], name='event_reversal_idx'),
        ),
        migrations.AddIndex(
            model_name='conversionevent',
            index=models.Index(condition=models.Q(('actor__isnull', False)), fields=['actor'], name='event_actor_idx'),
        ),
        migrations.AddIndex(
            model_name='postbackattempt',
            index=models.Index(fields=['program', 'created_at'], name='postback_log_idx'),
        ),
        migrations.AddIndex(
            model_name='postbackattempt',
            index=models.Index(condition=models.Q(('result', 'refused')), fields=['program', 'created_at'], name='postback_refused_idx'),
        ),
        migrations.AddIndex(
            model_name='postbackattempt',
            index=models.Index(condition=models.Q(('replay_of__isnull', False)), fields=['replay_of'], name='postback_replay_idx'),
        ),
    ]
