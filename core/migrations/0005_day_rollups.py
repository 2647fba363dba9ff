from django.db import migrations, models

DIMENSIONS = "environment, policy_id, version_id, outcome, effective_mode"
TABLES = {"audit_decisionrollup": "", "audit_reasonrollup": ", reason", "audit_latencyrollup": ", latency_bucket"}


def day_rows_from_hour_rows():
    """Decisions stored before this migration were counted per minute and per hour: their days are
    the sums of their (UTC) hours, so the day rows need no pass over the decisions themselves."""
    forward = [
        f"INSERT INTO {table} (granularity, period, {DIMENSIONS}{extra}, decisions) "
        f"SELECT 1440, date_trunc('day', period, 'UTC'), {DIMENSIONS}{extra}, sum(decisions) FROM {table} "
        f"WHERE granularity = 60 GROUP BY 2, {DIMENSIONS}{extra}"
        for table, extra in TABLES.items()]
    backward = [f"DELETE FROM {table} WHERE granularity = 1440" for table in TABLES]
    return migrations.RunSQL(forward, backward)


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0004_outcome_would_need_approval'),
    ]

    operations = [
        migrations.AlterField(
            model_name='decisionrollup',
            name='granularity',
            field=models.PositiveSmallIntegerField(choices=[(1, 'Minute'), (60, 'Hour'), (1440, 'Day')]),
        ),
        migrations.AlterField(
            model_name='latencyrollup',
            name='granularity',
            field=models.PositiveSmallIntegerField(choices=[(1, 'Minute'), (60, 'Hour'), (1440, 'Day')]),
        ),
        migrations.AlterField(
            model_name='reasonrollup',
            name='granularity',
            field=models.PositiveSmallIntegerField(choices=[(1, 'Minute'), (60, 'Hour'), (1440, 'Day')]),
        ),
        day_rows_from_hour_rows(),
    ]
