"""``python -m dsmnet`` (also what ``torchrun -m dsmnet`` runs)."""

if __name__ == "__main__":  # (not on import: documentation tools import every module)
    from dsmnet.cli import main

    raise SystemExit(main())
