"""Only Django's record of the models moves, from policies to rollout; their tables, rows and names stay as they are."""
from django.conf import settings
from django.db import migrations, models
import django.contrib.postgres.fields
import django.core.validators
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('policies', '0009_opa_instance_decommission'),
        ('fleet', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='KillSwitchChange',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('engaged', models.BooleanField()),
                    ('reason', models.CharField(max_length=500)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('changed_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('environment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='kill_switch_changes', to='fleet.environment')),
                ],
                options={
                    'db_table': 'policies_killswitchchange',
                    'ordering': ['-created_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='PolicyException',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('reason_contains', models.CharField(blank=True, help_text="Only denials whose reason contains this text (a rule's message). Blank: every denial.", max_length=300)),
                    ('match', models.JSONField(help_text='Input fields the request must have, e.g. [{"field": "user.id", "value": "u-1"}].')),
                    ('justification', models.TextField()),
                    ('ticket', models.CharField(max_length=100)),
                    ('approved_at', models.DateTimeField(blank=True, null=True)),
                    ('expires_at', models.DateTimeField()),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('approved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('environment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='exceptions', to='fleet.environment')),
                    ('policy', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='exceptions', to='policies.policy')),
                    ('requested_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'policies_policyexception',
                    'ordering': ['expires_at'],
                    'permissions': [('approve_policyexception', 'Can approve a policy exception')],
                },
            ),
            migrations.CreateModel(
                name='CanarySetting',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('mode', models.CharField(choices=[('off', 'Off'), ('dry-run', 'Dry-run'), ('enforce', 'Enforce')], default='enforce', help_text='The mode of everyone not singled out below.', max_length=10)),
                    ('enforce_percentage', models.PositiveSmallIntegerField(default=0, help_text='Share of users, by a stable hash of their id, who are enforced.', validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(100)])),
                    ('enforce_users', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=200), blank=True, default=list, size=None)),
                    ('enforce_agents', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=200), blank=True, default=list, size=None)),
                    ('dry_run_users', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=200), blank=True, default=list, size=None)),
                    ('user_field', models.CharField(default='user.id', help_text='Input path of the user id.', max_length=200)),
                    ('agent_field', models.CharField(default='agent.id', help_text='Input path of the agent id.', max_length=200)),
                    ('reason', models.CharField(max_length=500)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('changed_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('environment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='canary_settings', to='fleet.environment')),
                    ('policy', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='canary_settings', to='policies.policy')),
                ],
                options={
                    'db_table': 'policies_canarysetting',
                    'ordering': ['-created_at', '-id'],
                    'indexes': [models.Index(fields=['policy', 'environment', '-created_at'], name='policies_ca_policy__c0ceda_idx')],
                },
            ),
        ]),
    ]
