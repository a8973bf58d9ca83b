"""``python -m dsmnet`` (also what ``torchrun -m dsmnet`` runs)."""

from dsmnet.cli import main

raise SystemExit(main())
