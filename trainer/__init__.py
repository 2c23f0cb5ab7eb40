"""napari-ian compute layer: readers/writers, models, training, metrics and the ``ian`` CLI.

Installed as ``napari_ian.trainer``. It never imports napari or Qt, so it runs on servers,
in scripts and under ``torchrun``.
"""
from .errors import VolumeReadError, VolumeWriteError
from .io import read_volume
from .io_nifti import write_nifti
from .volume import CANONICAL_AXCODES, CORONAL_AXIS, LABELS, Geometry, Volume

__all__ = ["read_volume", "write_nifti", "Volume", "Geometry", "VolumeReadError",
           "VolumeWriteError", "CANONICAL_AXCODES", "CORONAL_AXIS", "LABELS"]
