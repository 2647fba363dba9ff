"""Each publication carries its version's policy, so ingest finds each (policy, environment)'s
latest confirmed publication by one index step instead of sorting the whole history."""
import django.db.models.deletion
import django.db.models.functions.comparison
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('fleet', '0001_initial'),
        ('policies', '0012_pending_publish_requests_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='publication',
            name='policy',
            field=models.ForeignKey(editable=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='policies.policy'),
        ),
        migrations.RunSQL(
            "UPDATE policies_publication AS publication SET policy_id = version.policy_id"
            " FROM policies_policyversion AS version WHERE version.id = publication.version_id",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name='publication',
            name='policy',
            field=models.ForeignKey(editable=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='policies.policy'),
        ),
        migrations.AddIndex(
            model_name='publication',
            index=models.Index(models.F('policy'), django.db.models.functions.comparison.Coalesce('environment', 0),
                               models.F('confirmed_at'), models.F('id'), condition=models.Q(('status', 'ok')),
                               name='publication_latest'),
        ),
    ]
