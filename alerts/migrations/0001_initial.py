"""Only Django's record of the models moves, from audit to alerts; their tables, rows and names stay as they are."""
from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('audit', '0012_export_expiry'),
        ('policies', '0009_opa_instance_decommission'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='AlertRule',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=200)),
                    ('metric', models.CharField(choices=[('deny_rate', 'Deny rate (%)'), ('p95_latency', 'p95 evaluation latency (ms)')], max_length=20)),
                    ('threshold', models.FloatField(help_text='Fires when the value goes above this: percent, or milliseconds.')),
                    ('window_minutes', models.PositiveSmallIntegerField(default=5, help_text='Measured over the last N whole minutes.')),
                    ('min_decisions', models.PositiveIntegerField(default=20, help_text='Below this many decisions in the window the rule stays quiet: too few to judge.')),
                    ('environment', models.CharField(blank=True, help_text='Blank: every environment.', max_length=100)),
                    ('enabled', models.BooleanField(default=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('policy', models.ForeignKey(blank=True, help_text='Blank: every policy.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='alert_rules', to='policies.policy')),
                ],
                options={
                    'db_table': 'audit_alertrule',
                    'ordering': ['name'],
                },
            ),
            migrations.CreateModel(
                name='Alert',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('opened_at', models.DateTimeField()),
                    ('opened_value', models.FloatField()),
                    ('peak_value', models.FloatField()),
                    ('last_value', models.FloatField()),
                    ('decisions', models.PositiveIntegerField(help_text='Decisions in the window when it opened.')),
                    ('closed_at', models.DateTimeField(blank=True, null=True)),
                    ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='alerts.alertrule')),
                ],
                options={
                    'db_table': 'audit_alert',
                    'ordering': ['-opened_at'],
                    'constraints': [models.UniqueConstraint(condition=models.Q(('closed_at__isnull', True)), fields=('rule',), name='one_open_alert_per_rule')],
                },
            ),
        ]),
    ]
