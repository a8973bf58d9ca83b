"""The subtomogram simulator: crowded tomograms with CTF, MTF, missing wedge and noise, and
ground truth for classification, segmentation and structure recovery (paper §3.1)."""
