"""How a pull environment's bundle reaches its OPAs: signed (signing.py), and from Gavel's bundle
service (fleet/service_api.py) or an S3-compatible bucket (storage.py)."""
