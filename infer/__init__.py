"""Inference on users' data: boxes cut from their tomograms at their picks (RELION-4/5, Warp/M,
plain coordinate tables), a trained run's answers for each, and whole-tomogram maps."""
