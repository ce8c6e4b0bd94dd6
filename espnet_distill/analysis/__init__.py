"""Measurements (floor 4): benchmark.py (parameters, MACs, speed, update FLOPs), cka.py (layer
similarity), plots.py (training curves), results.py (the RESULTS.md and CLAIMS.md tables)."""
