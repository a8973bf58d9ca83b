"""dsmnet's benchmarks: each prints ratios measured in one run. ``python -m bench`` runs them all."""
