from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0005_day_rollups'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='decision',
            name='decision_id_lookup',
        ),
    ]
