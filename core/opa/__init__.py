"""Everything Gavel does with OPA: its REST API (client), its binary (cli), and evaluating a
version's own answer for replay and explain (evaluation)."""
