"""Worked examples for the rules the step-by-step builder cannot do: OPA's partial evaluation
(probes.py), then a solver and a search over what it leaves (solver.py)."""
