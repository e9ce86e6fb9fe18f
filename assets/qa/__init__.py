"""Template QA synthesis: levels L0-L2 (plus L3 from `l3.py`), shared formats, task mixture, shards, dataset."""
