from django.db import migrations

# Django gives a varchar primary key a second, LIKE-ready index, created when 0007 ends (so it
# could not be dropped there). Nothing searches these ids by prefix, and at 10M decisions that
# index alone read a page from outside shared buffers for every decision stored.
DROP_LIKE_INDEX = """
DO $$ DECLARE name text; BEGIN
  FOR name IN SELECT indexname FROM pg_indexes WHERE tablename = 'audit_decision_id' AND indexname LIKE '%\\_like'
  LOOP EXECUTE format('DROP INDEX %I', name); END LOOP;
END $$
"""


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0007_stored_decision_ids'),
    ]

    operations = [
        migrations.RunSQL(DROP_LIKE_INDEX, migrations.RunSQL.noop),
    ]
