"""Only Django's record of the models moves, from audit to core; their tables, rows and names stay as they are."""
from django.db import migrations, models
import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('audit', '0012_export_expiry'),
        ('policies', '0009_opa_instance_decommission'),
        ('fleet', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='LogBatch',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('received_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                    ('body_gz', models.BinaryField()),
                    ('event_count', models.PositiveIntegerField()),
                    ('remote_addr', models.GenericIPAddressField(blank=True, null=True)),
                    ('status', models.CharField(choices=[('queued', 'Queued'), ('stored', 'Stored')], default='queued', max_length=10)),
                    ('stored_at', models.DateTimeField(blank=True, null=True)),
                    ('stored_count', models.PositiveIntegerField(default=0)),
                    ('duplicate_count', models.PositiveIntegerField(default=0)),
                ],
                options={
                    'db_table': 'audit_logbatch',
                },
            ),
            migrations.CreateModel(
                name='ReasonRollup',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('period', models.DateTimeField(help_text='Start of the minute or hour counted.')),
                    ('granularity', models.PositiveSmallIntegerField(choices=[(1, 'Minute'), (60, 'Hour')])),
                    ('environment', models.CharField(blank=True, max_length=100)),
                    ('outcome', models.CharField(choices=[('allow', 'Allow'), ('deny', 'Deny'), ('require_approval', 'Require approval'), ('would_deny', 'Dry-run: would deny'), ('undefined', 'Undefined')], max_length=20)),
                    ('effective_mode', models.CharField(blank=True, max_length=10)),
                    ('decisions', models.BigIntegerField()),
                    ('reason', models.TextField()),
                ],
                options={
                    'db_table': 'audit_reasonrollup',
                },
            ),
            migrations.CreateModel(
                name='Decision',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('decision_id', models.CharField(max_length=100)),
                    ('timestamp', models.DateTimeField()),
                    ('path', models.CharField(max_length=500)),
                    ('input', models.JSONField(blank=True, null=True)),
                    ('result', models.JSONField(blank=True, null=True)),
                    ('outcome', models.CharField(choices=[('allow', 'Allow'), ('deny', 'Deny'), ('require_approval', 'Require approval'), ('would_deny', 'Dry-run: would deny'), ('undefined', 'Undefined')], max_length=20)),
                    ('reasons', django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), blank=True, default=list, size=None)),
                    ('version_source', models.CharField(choices=[('reported', "Reported by Gavel's entrypoint"), ('bundle', 'Named by the bundle revision OPA ran'), ('publication', 'Active publication at decision time'), ('unknown', 'Unknown')], default='unknown', max_length=20)),
                    ('effective_mode', models.CharField(blank=True, help_text='enforce, dry-run or off, when the entrypoint decided.', max_length=10)),
                    ('exception_ids', django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), blank=True, default=list, help_text='Policy exceptions that waived denials in this decision.', size=None)),
                    ('masked', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=300), blank=True, default=list, help_text='Input fields hashed or erased before storage (path=mode).', size=None)),
                    ('approval_ref', models.CharField(blank=True, help_text='The held action whose approval allowed this retry.', max_length=100)),
                    ('labels', models.JSONField(blank=True, default=dict, help_text="The OPA instance's labels (id, version, ...).")),
                    ('bundles', models.JSONField(blank=True, default=dict, help_text='Bundle revisions OPA reported.')),
                    ('latency_ns', models.BigIntegerField(blank=True, help_text="OPA's query evaluation time.", null=True)),
                    ('requested_by', models.CharField(blank=True, max_length=200)),
                    ('received_at', models.DateTimeField(auto_now_add=True)),
                    ('environment', models.CharField(blank=True, help_text='The environment of the OPA instance that decided.', max_length=100)),
                    ('instance', models.CharField(blank=True, help_text='The OPA instance: its `instance` label, else its id.', max_length=200)),
                    ('user', models.CharField(blank=True, help_text='Who asked, from the input.', max_length=300)),
                    ('agent', models.CharField(blank=True, help_text='The agent acting, from the input.', max_length=300)),
                    ('action', models.CharField(blank=True, max_length=300)),
                    ('resource', models.CharField(blank=True, max_length=300)),
                    ('search_text', models.TextField(blank=True, help_text='Reasons and the chosen input fields, for full-text search.')),
                    ('search', models.GeneratedField(db_persist=True, expression=django.contrib.postgres.search.SearchVector('search_text', config='simple'), output_field=django.contrib.postgres.search.SearchVectorField())),
                    ('policy', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='decisions', to='policies.policy')),
                    ('version', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='decisions', to='policies.policyversion')),
                ],
                options={
                    'db_table': 'audit_decision',
                    'ordering': ['-timestamp', '-id'],
                    'permissions': [('export_decision', 'Can export decisions')],
                },
            ),
            migrations.CreateModel(
                name='DecisionRollup',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('period', models.DateTimeField(help_text='Start of the minute or hour counted.')),
                    ('granularity', models.PositiveSmallIntegerField(choices=[(1, 'Minute'), (60, 'Hour')])),
                    ('environment', models.CharField(blank=True, max_length=100)),
                    ('outcome', models.CharField(choices=[('allow', 'Allow'), ('deny', 'Deny'), ('require_approval', 'Require approval'), ('would_deny', 'Dry-run: would deny'), ('undefined', 'Undefined')], max_length=20)),
                    ('effective_mode', models.CharField(blank=True, max_length=10)),
                    ('decisions', models.BigIntegerField()),
                    ('policy', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='policies.policy')),
                    ('version', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='policies.policyversion')),
                ],
                options={
                    'db_table': 'audit_decisionrollup',
                },
            ),
            migrations.CreateModel(
                name='LatencyRollup',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('period', models.DateTimeField(help_text='Start of the minute or hour counted.')),
                    ('granularity', models.PositiveSmallIntegerField(choices=[(1, 'Minute'), (60, 'Hour')])),
                    ('environment', models.CharField(blank=True, max_length=100)),
                    ('outcome', models.CharField(choices=[('allow', 'Allow'), ('deny', 'Deny'), ('require_approval', 'Require approval'), ('would_deny', 'Dry-run: would deny'), ('undefined', 'Undefined')], max_length=20)),
                    ('effective_mode', models.CharField(blank=True, max_length=10)),
                    ('decisions', models.BigIntegerField()),
                    ('latency_bucket', models.SmallIntegerField()),
                    ('policy', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='policies.policy')),
                    ('version', models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='policies.policyversion')),
                ],
                options={
                    'db_table': 'audit_latencyrollup',
                },
            ),
            migrations.AddField(
                model_name='logbatch',
                name='environment',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='fleet.environment'),
            ),
            migrations.AddField(
                model_name='logbatch',
                name='instance',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='fleet.opainstance'),
            ),
            migrations.AddField(
                model_name='decision',
                name='batch',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='decisions', to='core.logbatch'),
            ),
            migrations.AddField(
                model_name='reasonrollup',
                name='policy',
                field=models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='policies.policy'),
            ),
            migrations.AddField(
                model_name='reasonrollup',
                name='version',
                field=models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='policies.policyversion'),
            ),
            migrations.AddConstraint(
                model_name='decisionrollup',
                constraint=models.UniqueConstraint(fields=('granularity', 'period', 'environment', 'policy', 'version', 'outcome', 'effective_mode'), name='decision_rollup_key', nulls_distinct=False),
            ),
            migrations.AddConstraint(
                model_name='latencyrollup',
                constraint=models.UniqueConstraint(fields=('granularity', 'period', 'environment', 'policy', 'version', 'outcome', 'effective_mode', 'latency_bucket'), name='latency_rollup_key', nulls_distinct=False),
            ),
            migrations.AddIndex(
                model_name='logbatch',
                index=models.Index(fields=['status', 'received_at'], name='audit_logba_status_22fe3b_idx'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['timestamp', 'id'], name='decision_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['decision_id'], name='decision_id_lookup'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['outcome', 'timestamp', 'id'], name='decision_outcome_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['policy', 'timestamp', 'id'], name='decision_policy_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['version', 'timestamp', 'id'], name='decision_version_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['effective_mode', 'timestamp', 'id'], name='decision_mode_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['instance', 'timestamp', 'id'], name='decision_instance_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['user', 'timestamp', 'id'], name='decision_user_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['agent', 'timestamp', 'id'], name='decision_agent_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['action', 'timestamp', 'id'], name='decision_action_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['resource', 'timestamp', 'id'], name='decision_resource_time'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(fields=['path'], name='decision_path_prefix', opclasses=['varchar_pattern_ops']),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=models.Index(condition=models.Q(('approval_ref', ''), _negated=True), fields=['approval_ref'], name='decision_approval_ref'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=django.contrib.postgres.indexes.GinIndex(fields=['exception_ids'], name='decision_exception_ids'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=django.contrib.postgres.indexes.GinIndex(fields=['search'], name='decision_search'),
            ),
            migrations.AddIndex(
                model_name='decision',
                index=django.contrib.postgres.indexes.GinIndex(fields=['reasons'], name='decision_reasons'),
            ),
            migrations.AddConstraint(
                model_name='decision',
                constraint=models.UniqueConstraint(fields=('decision_id', 'environment', 'timestamp'), name='decision_once'),
            ),
            migrations.AddConstraint(
                model_name='reasonrollup',
                constraint=models.UniqueConstraint(fields=('granularity', 'period', 'environment', 'policy', 'version', 'outcome', 'effective_mode', 'reason'), name='reason_rollup_key', nulls_distinct=False),
            ),
        ]),
    ]
