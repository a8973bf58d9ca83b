"""Reading and writing datasets: MRC volumes and RELION-style STAR particle tables."""
