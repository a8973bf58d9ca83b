"""Reproduction of the paper's study: Tables 1–3 from the ablation generator, and unseen-structure discovery."""
