"""Auditors must be able to trust that a version's source is what was published: the
database itself refuses to change or delete a saved version."""
from django.db import migrations

FORBID = """
CREATE FUNCTION gavel_forbid_version_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'policy versions are immutable (version id %)', OLD.id;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER policy_version_immutable BEFORE UPDATE OR DELETE ON policies_policyversion
  FOR EACH ROW EXECUTE FUNCTION gavel_forbid_version_change();
"""
ALLOW = """
DROP TRIGGER IF EXISTS policy_version_immutable ON policies_policyversion;
DROP FUNCTION IF EXISTS gavel_forbid_version_change();
"""


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial")]
    operations = [migrations.RunSQL(FORBID, ALLOW)]
