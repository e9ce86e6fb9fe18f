"""The Dagster code location of HiSpatial (definitions.py is the table of contents)."""
