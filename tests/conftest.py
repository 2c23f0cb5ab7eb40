"""Shared non-GUI fixtures: phantom patients made once per test session.

Making one phantom patient takes several seconds, so every test that needs one asks the
``phantom_cache`` (a memoised :func:`make_phantom`) and gets the same read-only arrays.
"""
from __future__ import annotations

import pytest

# ``ian phantom --seed 5`` and ``write_dataset(..., seed=5)`` make patient seeds 5000, 5001, ...
PHANTOM_SEED = 5000


class PhantomCache:
    """``cache(seed)`` -> make_phantom(seed), computed once per seed, arrays read-only."""

    def __init__(self):
        self._done = {}

    def __call__(self, seed=0, params=None, **overrides):
        from napari_ian.sample_data.phantom import make_phantom

        if params is not None or overrides:
            return make_phantom(seed, params=params, **overrides)
        if seed not in self._done:
            image, labels, spacing, info = make_phantom(seed)
            image.flags.writeable = False
            labels.flags.writeable = False
            self._done[seed] = (image, labels, spacing, info)
        return self._done[seed]


@pytest.fixture(scope="session")
def phantom_cache():
    return PhantomCache()


@pytest.fixture(scope="session")
def phantom(phantom_cache):
    """(image, labels, spacing, info) of phantom patient seed 5000."""
    return phantom_cache(PHANTOM_SEED)
