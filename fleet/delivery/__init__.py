"""How a pull environment's bundle reaches its OPAs: signed (signing.py) by Gavel's bundle
service (fleet/service_api.py)."""
