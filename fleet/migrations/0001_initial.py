"""Only Django's record of the models moves, from policies to fleet; their tables, rows and names stay as they are."""
from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('policies', '0009_opa_instance_decommission'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='Environment',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.SlugField(unique=True)),
                    ('opa_url', models.URLField(blank=True, help_text='Blank: the OPA_URL setting.')),
                    ('delivery', models.CharField(choices=[('push', "Push (OPA's policy REST API)"), ('pull', 'Pull (OPA downloads bundles from Gavel)')], default='push', max_length=10)),
                    ('bundle_token_hash', models.CharField(blank=True, max_length=64)),
                ],
                options={
                    'db_table': 'policies_environment',
                    'ordering': ['name'],
                },
            ),
            migrations.CreateModel(
                name='OpaInstance',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.SlugField(help_text="Matches the OPA's `instance` label (else its id).", max_length=100)),
                    ('url', models.URLField(blank=True, help_text='Where Gavel reaches its REST API (push delivery).')),
                    ('token', models.CharField(blank=True, max_length=500)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('last_status_at', models.DateTimeField(blank=True, null=True)),
                    ('healthy', models.BooleanField(null=True)),
                    ('active_revision', models.CharField(blank=True, max_length=2000)),
                    ('status_detail', models.TextField(blank=True)),
                    ('token_state', models.CharField(blank=True, choices=[('', "Not managed (OPA does not run Gavel's authorization policy)"), ('active', 'Active'), ('adding', 'Rotating: OPA is learning the new token'), ('removing', 'Rotating: switched, OPA is forgetting the old token')], default='', max_length=10)),
                    ('other_token', models.CharField(blank=True, max_length=500)),
                    ('token_issued_at', models.DateTimeField(blank=True, null=True)),
                    ('token_detail', models.TextField(blank=True, help_text='Why the last rotation step failed.')),
                    ('decommissioned_at', models.DateTimeField(blank=True, null=True)),
                    ('decommissioned_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('environment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='instances', to='fleet.environment')),
                ],
                options={
                    'db_table': 'policies_opainstance',
                    'ordering': ['environment', 'name'],
                    'permissions': [('manage_opa_credentials', 'Can issue, rotate and revoke OPA instance tokens')],
                },
            ),
            migrations.CreateModel(
                name='OpaCredential',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('token_hash', models.CharField(max_length=64, unique=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('last_used_at', models.DateTimeField(blank=True, null=True)),
                    ('expires_at', models.DateTimeField(blank=True, help_text='Set when a newer token replaces it.', null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('replaced_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replaces', to='fleet.opacredential')),
                    ('revoked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('instance', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credentials', to='fleet.opainstance')),
                ],
                options={
                    'db_table': 'policies_opacredential',
                    'ordering': ['-created_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='DriftAlert',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('target_url', models.URLField()),
                    ('resource', models.CharField(help_text='The OPA policy id that drifted.', max_length=300)),
                    ('expected_hash', models.CharField(max_length=64)),
                    ('actual_hash', models.CharField(blank=True, help_text='Blank: OPA does not have it at all.', max_length=64)),
                    ('detected_at', models.DateTimeField(auto_now_add=True)),
                    ('resolved_at', models.DateTimeField(blank=True, null=True)),
                    ('escalated', models.BooleanField(default=False, help_text='Drifted too often: a person must look.')),
                    ('policy', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='drift_alerts', to='policies.policy')),
                    ('repush', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='policies.publication')),
                    ('environment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='drift_alerts', to='fleet.environment')),
                    ('instance', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='drift_alerts', to='fleet.opainstance')),
                ],
                options={
                    'db_table': 'policies_driftalert',
                    'ordering': ['-detected_at', '-id'],
                },
            ),
            migrations.AddConstraint(
                model_name='opainstance',
                constraint=models.UniqueConstraint(fields=('environment', 'name'), name='unique_instance_name'),
            ),
            migrations.AddIndex(
                model_name='driftalert',
                index=models.Index(fields=['target_url', 'resource', '-detected_at'], name='policies_dr_target__dcf426_idx'),
            ),
        ]),
    ]
