"""Only Django's record of the models moves, from audit to exports; their tables, rows and names stay as they are."""
from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('audit', '0012_export_expiry'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='ExportRecord',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('format', models.CharField(choices=[('csv', 'CSV'), ('jsonl', 'JSON Lines')], max_length=10)),
                    ('delivery', models.CharField(choices=[('stream', 'Streamed download'), ('job', 'Background job')], max_length=10)),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('incomplete', 'Stopped before the end (download interrupted)')], db_index=True, default='queued', max_length=12)),
                    ('query', models.TextField(blank=True, help_text="The search as a query string of DecisionFilter's fields.")),
                    ('readable_filter', models.TextField(blank=True)),
                    ('as_of', models.DateTimeField(help_text='Only decisions Gavel had stored by then are exported.')),
                    ('expected_rows', models.PositiveBigIntegerField(default=0, help_text="The search's count when the export began.")),
                    ('row_count', models.PositiveBigIntegerField(default=0, help_text='Rows written so far; final once done.')),
                    ('first_timestamp', models.DateTimeField(blank=True, null=True)),
                    ('last_timestamp', models.DateTimeField(blank=True, null=True)),
                    ('sha256', models.CharField(blank=True, max_length=64)),
                    ('size_bytes', models.PositiveBigIntegerField(default=0)),
                    ('file_name', models.CharField(blank=True, help_text='Under GAVEL_EXPORT_DIR (job exports).', max_length=200)),
                    ('gavel_version', models.CharField(max_length=40)),
                    ('error', models.TextField(blank=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('expired_at', models.DateTimeField(blank=True, help_text="When the job's file was deleted.", null=True)),
                    ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('expired_by', models.ForeignKey(blank=True, help_text='Who deleted the file early; empty: retention did.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'audit_exportrecord',
                    'ordering': ['-created_at', '-id'],
                },
            ),
        ]),
    ]
