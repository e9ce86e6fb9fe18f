"""Plain-Python computation behind each HiSpatial asset: no Dagster imports here."""
