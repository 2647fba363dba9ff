import django.contrib.postgres.indexes
from django.db import migrations, models

# The ids stored so far; where one id was stored more than once (before ids were kept once) the
# earliest row is the one ingest would have kept.
REGISTER_STORED = """
INSERT INTO audit_decision_id (decision_id, environment, timestamp)
SELECT DISTINCT ON (decision_id) decision_id, environment, timestamp FROM audit_decision
ORDER BY decision_id, timestamp
"""


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0006_drop_decision_id_lookup'),
    ]

    operations = [
        migrations.CreateModel(
            name='StoredDecisionId',
            fields=[
                ('decision_id', models.CharField(max_length=100, primary_key=True, serialize=False)),
                ('environment', models.CharField(blank=True, max_length=100)),
                ('timestamp', models.DateTimeField()),
            ],
            options={
                'db_table': 'audit_decision_id',
                'indexes': [django.contrib.postgres.indexes.BrinIndex(fields=['timestamp'], name='decision_id_time')],
            },
        ),
        migrations.RunSQL(REGISTER_STORED, "DELETE FROM audit_decision_id"),
    ]
