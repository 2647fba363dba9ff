"""Environments, OPA instances and tokens now live in fleet, rollout state in rollout; their tables stay here by name."""
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('policies', '0009_opa_instance_decommission'),
        ('activity', '0007_follow_moved_models'),
        ('core', '0001_initial'),
        ('fleet', '0001_initial'),
        ('rollout', '0001_initial'),
        ('approvals', '0001_initial'),
        ('exports', '0001_initial'),
        ('alerts', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.RemoveField(
                model_name='driftalert',
                name='environment',
            ),
            migrations.RemoveField(
                model_name='driftalert',
                name='instance',
            ),
            migrations.RemoveField(
                model_name='driftalert',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='driftalert',
                name='repush',
            ),
            migrations.RemoveField(
                model_name='opainstance',
                name='environment',
            ),
            migrations.AlterField(
                model_name='publishrequest',
                name='environment',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='publish_requests', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='publication',
                name='environment',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='publications', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='publishevent',
                name='environment',
                field=models.ForeignKey(blank=True, help_text='Blank: every environment (retirement) or before environments.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='fleet.environment'),
            ),
            migrations.RemoveField(
                model_name='policyexception',
                name='environment',
            ),
            migrations.RemoveField(
                model_name='killswitchchange',
                name='environment',
            ),
            migrations.AlterField(
                model_name='activeversion',
                name='environment',
                field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='active_versions', to='fleet.environment'),
            ),
            migrations.RemoveField(
                model_name='killswitchchange',
                name='changed_by',
            ),
            migrations.RemoveField(
                model_name='opacredential',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='opacredential',
                name='instance',
            ),
            migrations.RemoveField(
                model_name='opacredential',
                name='replaced_by',
            ),
            migrations.RemoveField(
                model_name='opacredential',
                name='revoked_by',
            ),
            migrations.RemoveField(
                model_name='opainstance',
                name='decommissioned_by',
            ),
            migrations.AlterField(
                model_name='publication',
                name='instance',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='publications', to='fleet.opainstance'),
            ),
            migrations.RemoveField(
                model_name='policyexception',
                name='approved_by',
            ),
            migrations.RemoveField(
                model_name='policyexception',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='policyexception',
                name='requested_by',
            ),
            migrations.DeleteModel(
                name='CanarySetting',
            ),
            migrations.DeleteModel(
                name='DriftAlert',
            ),
            migrations.DeleteModel(
                name='Environment',
            ),
            migrations.DeleteModel(
                name='KillSwitchChange',
            ),
            migrations.DeleteModel(
                name='OpaCredential',
            ),
            migrations.DeleteModel(
                name='OpaInstance',
            ),
            migrations.DeleteModel(
                name='PolicyException',
            ),
        ]),
    ]
