"""Synthetic MR neurography phantoms of the lower jaw with IAN ground truth (no patient data)."""
from .phantom import INTENSITY_SLOPE, PhantomParams, draw_params, make_phantom

__all__ = ["make_phantom", "draw_params", "PhantomParams", "INTENSITY_SLOPE"]
