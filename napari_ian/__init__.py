"""napari-ian: annotate, predict and review the inferior alveolar nerve on MR neurography.

This package keeps its import light: the GUI modules import napari/Qt only when napari loads
the plugin's contributions, and ``napari_ian.trainer`` (compute, CLI) never imports them.
"""
__version__ = "0.1.0"
