"""The ``ian`` command line: ``ian phantom`` and ``ian info`` (more subcommands in later releases).

Every failure the user can cause prints one line, ``ian: <path>: <problem>``, and exits with
status 2; no traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_phantom(args) -> int:
    from tqdm import tqdm

    from ..sample_data.dataset import write_dataset

    bar = tqdm(total=args.patients, unit="patient", desc="phantom", disable=args.quiet)

    def progress(done, total, case):
        bar.set_postfix_str(case)
        bar.update(1)

    try:
        table = write_dataset(args.out, args.patients, seed=args.seed, dicom=not args.no_dicom,
                              overwrite=args.overwrite, progress=progress)
    finally:
        bar.close()
    print(f"wrote {args.patients} phantom patient(s) to {args.out} (cases table: {table})")
    return 0


def _format_info(info: dict) -> str:
    width = max(len(k) for k in info)
    return "\n".join(f"{k:<{width}}  {v if not isinstance(v, tuple) else ' x '.join(str(x) for x in v)}"
                     for k, v in info.items())


def _cmd_info(args) -> int:
    from .errors import GeometryMissingError
    from .io import read_volume

    try:
        vol = read_volume(args.path, series_uid=args.series)
    except GeometryMissingError as exc:
        # an image that records too little geometry: describe what it does record
        print(_format_info({"source": exc.path, **exc.facts}))
        print(f"not openable as a volume: {exc.problem}")
        return 0
    print(_format_info(vol.info()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ian", description="napari-ian: the inferior alveolar nerve on MR neurography.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantom", help="write a synthetic MRN jaw dataset (NIfTI + DICOM + cases.csv)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--patients", type=int, default=10, help="number of patients (default 10)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--no-dicom", action="store_true", help="write NIfTI only")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("info", help="geometry of a NIfTI file or DICOM series folder")
    p.add_argument("path", type=Path, help=".nii/.nii.gz file, DICOM folder or multi-frame DICOM file")
    p.add_argument("--series", default=None, help="SeriesInstanceUID when a folder holds several")
    p.set_defaults(func=_cmd_info)
    return ap


def main(argv=None) -> int:
    """Entry point of the ``ian`` console script."""
    from .errors import VolumeReadError, VolumeWriteError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (VolumeReadError, VolumeWriteError, FileExistsError, ValueError, OSError) as exc:
        print(f"ian: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ian: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
