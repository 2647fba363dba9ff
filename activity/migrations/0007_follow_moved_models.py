"""The tracked models moved to the feature apps: the proxies and event tables follow them in Django's record only."""
from django.db import migrations, models
import django.db.models.deletion


class MoveProxyBase(migrations.operations.base.Operation):
    """A tracked proxy's concrete model moved app: point the proxy at it. Django's record only;
    the triggers stay on the same table."""

    reduces_to_sql = False
    reversible = True

    def __init__(self, name: str, base: str, old_base: str):
        self.name, self.base, self.old_base = name, base, old_base

    def deconstruct(self):
        return self.__class__.__name__, [self.name, self.base, self.old_base], {}

    def state_forwards(self, app_label, state):
        self._set(app_label, state, self.base)

    def _set(self, app_label, state, base):
        state.models[app_label, self.name.lower()].bases = (base,)
        state.reload_model(app_label, self.name.lower(), delay=True)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return f"Point proxy {self.name} at {self.base}"


MOVED = {
    "TrackedEnvironment": ("fleet.environment", "policies.environment"),
    "TrackedOpaInstance": ("fleet.opainstance", "policies.opainstance"),
    "TrackedOpaCredential": ("fleet.opacredential", "policies.opacredential"),
    "TrackedCanarySetting": ("rollout.canarysetting", "policies.canarysetting"),
    "TrackedKillSwitchChange": ("rollout.killswitchchange", "policies.killswitchchange"),
    "TrackedPolicyException": ("rollout.policyexception", "policies.policyexception"),
    "TrackedHeldAction": ("approvals.heldaction", "audit.heldaction"),
    "TrackedApprovalVote": ("approvals.approvalvote", "audit.approvalvote"),
    "TrackedAlertRule": ("alerts.alertrule", "audit.alertrule"),
    "TrackedExportRecord": ("exports.exportrecord", "audit.exportrecord"),
}


class Migration(migrations.Migration):
    dependencies = [
        ('activity', '0006_track_decommission'),
        ('core', '0001_initial'),
        ('fleet', '0001_initial'),
        ('rollout', '0001_initial'),
        ('approvals', '0001_initial'),
        ('exports', '0001_initial'),
        ('alerts', '0001_initial'),
    ]

    operations = [
        *(MoveProxyBase(name, base, old) for name, (base, old) in MOVED.items()),
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='activeversionevent',
                name='environment',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='approvalvoteevent',
                name='held_action',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='approvals.heldaction'),
            ),
            migrations.AlterField(
                model_name='canarysettingevent',
                name='environment',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='killswitchchangeevent',
                name='environment',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='opacredentialevent',
                name='instance',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.opainstance'),
            ),
            migrations.AlterField(
                model_name='opacredentialevent',
                name='replaced_by',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.opacredential'),
            ),
            migrations.AlterField(
                model_name='opainstanceevent',
                name='environment',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='policyexceptionevent',
                name='environment',
                field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='publisheventevent',
                name='environment',
                field=models.ForeignKey(blank=True, db_constraint=False, help_text='Blank: every environment (retirement) or before environments.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
            migrations.AlterField(
                model_name='publishrequestevent',
                name='environment',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', related_query_name='+', to='fleet.environment'),
            ),
        ]),
    ]
