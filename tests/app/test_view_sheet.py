"""Contact-sheet labels (app/preview/view_sheet.py): the white letters sit inside their dark
outline at every tile size, so a small generated view's label stays readable."""

from __future__ import annotations

import numpy as np
import pytest

from fathom.app.preview.view_sheet import _stamp


@pytest.mark.parametrize("tile", [64, 256, 1024])
def test_label_letters_never_touch_the_bare_background(tile: int) -> None:
    sheet = np.full((tile, tile, 3), 0.5, np.float32)
    _stamp(sheet, "1  az 90 el 0", 0, 0, (tile, tile))
    grey = sheet[..., 0]
    white = np.argwhere(grey >= 0.95)
    assert len(white) > 0
    padded = np.pad(grey, 1, constant_values=0.0)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near = padded[white[:, 0] + 1 + dy, white[:, 1] + 1 + dx]
            # Each letter pixel's neighbours are letter or outline, never the untouched grey.
            assert not np.any(near == 0.5), (tile, dy, dx)
