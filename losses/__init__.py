"""Built-in losses: per-task losses and the weightings that combine them.

A task loss is an ``nn.Module`` returning one loss per sample (shape ``[B]``), so that samples
without a target for that task can be left out; ``targets`` names the ground truths it accepts
and ``kind`` (``classification``/``regression``) tells learned weightings how to scale it.
A weighting combines the per-task losses into the total.
"""
