"""Models that moved to the feature apps keep their content types, so the permissions groups
and users already hold stay theirs. A new database has none to move: this does nothing there."""
from django.db import migrations

MOVED = {
    "core": ("audit", ["logbatch", "decision", "decisionrollup", "reasonrollup", "latencyrollup"]),
    "approvals": ("audit", ["heldaction", "approvalvote", "heldactionevent"]),
    "exports": ("audit", ["exportrecord"]),
    "alerts": ("audit", ["alertrule", "alert"]),
    "fleet": ("policies", ["environment", "opainstance", "opacredential", "driftalert"]),
    "rollout": ("policies", ["canarysetting", "killswitchchange", "policyexception"]),
}


def adopt_content_types(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType").objects
    for app, (old_app, models) in MOVED.items():
        for model in models:
            if not content_types.filter(app_label=app, model=model).exists():
                content_types.filter(app_label=old_app, model=model).update(app_label=app)


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0001_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("audit", "0013_models_moved_to_feature_apps"),
        ("policies", "0010_models_moved_to_feature_apps"),
    ]

    operations = [migrations.RunPython(adopt_content_types, migrations.RunPython.noop)]
