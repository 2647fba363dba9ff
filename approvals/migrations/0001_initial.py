"""Only Django's record of the models moves, from audit to approvals; their tables, rows and names stay as they are."""
from django.conf import settings
from django.db import migrations, models
import django.contrib.postgres.fields
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('audit', '0012_export_expiry'),
        ('policies', '0009_opa_instance_decommission'),
        ('core', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='HeldAction',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('decision_id', models.CharField(max_length=100, unique=True)),
                    ('path', models.CharField(max_length=500)),
                    ('input', models.JSONField()),
                    ('reasons', django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), blank=True, default=list, size=None)),
                    ('requester', models.CharField(blank=True, help_text='Who asked, from the input.', max_length=200)),
                    ('risk', models.PositiveSmallIntegerField(default=1, help_text='1 (low) to 5 (high), for sorting the queue.')),
                    ('approvals_required', models.PositiveSmallIntegerField(default=1)),
                    ('status', models.CharField(choices=[('pending', 'Waiting for review'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('expired', 'Expired (rejected)')], db_index=True, default='pending', max_length=10)),
                    ('created_from', models.CharField(help_text='decision log or api: whichever arrived first.', max_length=20)),
                    ('callback_url', models.URLField(blank=True, help_text="The enforcement point's webhook for the outcome.")),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('expires_at', models.DateTimeField(help_text='Undecided by then, it is rejected.')),
                    ('escalated_at', models.DateTimeField(blank=True, null=True)),
                    ('decided_at', models.DateTimeField(blank=True, null=True)),
                    ('valid_until', models.DateTimeField(blank=True, help_text='An approved retry is allowed until then.', null=True)),
                    ('consumed_at', models.DateTimeField(blank=True, null=True)),
                    ('consumed_by_decision', models.CharField(blank=True, max_length=100)),
                ],
                options={
                    'db_table': 'audit_heldaction',
                    'ordering': ['-risk', 'created_at'],
                    'permissions': [('review_heldaction', 'Can approve or reject held actions')],
                },
            ),
            migrations.CreateModel(
                name='HeldActionEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('kind', models.CharField(choices=[('created', 'Held'), ('voted', 'Reviewed'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('escalated', 'Escalated'), ('expired', 'Expired'), ('consumed', 'Retried and allowed by OPA')], max_length=10)),
                    ('detail', models.TextField(blank=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                ],
                options={
                    'db_table': 'audit_heldactionevent',
                    'ordering': ['created_at', 'id'],
                },
            ),
            migrations.CreateModel(
                name='ApprovalVote',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('approve', models.BooleanField()),
                    ('comment', models.TextField()),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('reviewer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'audit_approvalvote',
                    'ordering': ['created_at'],
                },
            ),
            migrations.AddField(
                model_name='heldaction',
                name='logged_decision',
                field=models.OneToOneField(blank=True, db_constraint=False, help_text='Its decision log, once in.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='held_action', to='core.decision'),
            ),
            migrations.AddField(
                model_name='heldaction',
                name='policy',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='held_actions', to='policies.policy'),
            ),
            migrations.AddField(
                model_name='approvalvote',
                name='held_action',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='votes', to='approvals.heldaction'),
            ),
            migrations.AddField(
                model_name='heldactionevent',
                name='actor',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
            ),
            migrations.AddField(
                model_name='heldactionevent',
                name='held_action',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='approvals.heldaction'),
            ),
            migrations.AddConstraint(
                model_name='approvalvote',
                constraint=models.UniqueConstraint(fields=('held_action', 'reviewer'), name='one_vote_per_reviewer'),
            ),
        ]),
    ]
