"""Average the weights of model files of one network (trainer/soup.py) into a new model file.

Run: ``.venv/bin/python bench/average_models.py A.pt B.pt --out C.pt``
"""
from __future__ import annotations

import argparse

from napari_ian.trainer.modelfile import save_model
from napari_ian.trainer.soup import average_models


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    model, meta = average_models(args.models)
    print("saved", save_model(args.out, model, meta, overwrite=args.overwrite))


if __name__ == "__main__":
    main()
