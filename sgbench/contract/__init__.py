"""The method contract check's parts (sgbench/testing.py runs them)."""
