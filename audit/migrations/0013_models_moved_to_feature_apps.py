"""The audit app's models now live in core, approvals, exports and alerts; their tables stay here by name."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ('audit', '0012_export_expiry'),
        ('activity', '0007_follow_moved_models'),
        ('core', '0001_initial'),
        ('approvals', '0001_initial'),
        ('exports', '0001_initial'),
        ('alerts', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.RemoveField(
                model_name='alertrule',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='alertrule',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='approvalvote',
                name='held_action',
            ),
            migrations.RemoveField(
                model_name='approvalvote',
                name='reviewer',
            ),
            migrations.RemoveField(
                model_name='decision',
                name='batch',
            ),
            migrations.RemoveField(
                model_name='decision',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='decision',
                name='version',
            ),
            migrations.RemoveField(
                model_name='heldaction',
                name='logged_decision',
            ),
            migrations.RemoveField(
                model_name='decisionrollup',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='decisionrollup',
                name='version',
            ),
            migrations.RemoveField(
                model_name='exportrecord',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='exportrecord',
                name='expired_by',
            ),
            migrations.RemoveField(
                model_name='heldaction',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='heldactionevent',
                name='held_action',
            ),
            migrations.RemoveField(
                model_name='heldactionevent',
                name='actor',
            ),
            migrations.RemoveField(
                model_name='latencyrollup',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='latencyrollup',
                name='version',
            ),
            migrations.RemoveField(
                model_name='logbatch',
                name='environment',
            ),
            migrations.RemoveField(
                model_name='logbatch',
                name='instance',
            ),
            migrations.RemoveField(
                model_name='reasonrollup',
                name='policy',
            ),
            migrations.RemoveField(
                model_name='reasonrollup',
                name='version',
            ),
            migrations.DeleteModel(
                name='Alert',
            ),
            migrations.DeleteModel(
                name='AlertRule',
            ),
            migrations.DeleteModel(
                name='ApprovalVote',
            ),
            migrations.DeleteModel(
                name='Decision',
            ),
            migrations.DeleteModel(
                name='DecisionRollup',
            ),
            migrations.DeleteModel(
                name='ExportRecord',
            ),
            migrations.DeleteModel(
                name='HeldAction',
            ),
            migrations.DeleteModel(
                name='HeldActionEvent',
            ),
            migrations.DeleteModel(
                name='LatencyRollup',
            ),
            migrations.DeleteModel(
                name='LogBatch',
            ),
            migrations.DeleteModel(
                name='ReasonRollup',
            ),
        ]),
    ]
