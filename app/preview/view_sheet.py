"""A view set (``Views``) as one picture: its contact sheet with each tile labelled by its view
index and camera angles, so a person can tell which generated view looks from where.

Pure numpy and OpenCV (no Qt): the dock builds large sheets on its worker thread and the node
thumbnails build theirs there too.
"""

from __future__ import annotations

import math

import numpy as np

from fathom.engine.types import Camera, Views

#: Columns of the sheet: six views (the usual ring) as two rows of three.
COLUMNS = 3
#: Longest side of a sheet in the preview: six 1024² views are strided to this, which keeps
#: the GUI thread's share (one QImage conversion) well under 100 ms.
SHEET_MAX = 2048


def view_angles(camera: Camera) -> tuple[float, float] | None:
    """(azimuth, elevation) in degrees of a camera around the origin, in ``orbit_pose``'s
    convention (azimuth 0 on -z, positive elevation above, up is -y); None at the origin."""
    x, y, z = (float(c) for c in camera.pose[:3, 3])
    dist = math.sqrt(x * x + y * y + z * z)
    if dist < 1e-9:
        return None
    az = math.degrees(math.atan2(x, -z)) % 360.0
    el = math.degrees(math.asin(max(-1.0, min(1.0, -y / dist))))
    return az, el


def view_label(views: Views, i: int) -> str:
    """``"2  az 120 el -20"``: the index and the camera's angles, rounded to degrees."""
    angles = view_angles(views.cameras[i])
    if angles is None:
        return str(i)
    az, el = angles
    return f"{i}  az {round(az) % 360} el {round(el)}"


def _stamp(sheet: np.ndarray, text: str, x: int, y: int, tile: tuple[int, int]) -> None:
    """White text with a dark outline at the corner (x, y) of a tile of ``tile`` = (width,
    height), sized to it (only the index when the angles do not fit): readable on any view.
    OpenCV draws text on 8-bit images only: it is drawn as two masks and blended into the
    float sheet."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.3, tile[1] / 320)
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick + 2)
    if tw > 0.9 * tile[0]:
        text = text.split()[0]
        (tw, th), base = cv2.getTextSize(text, font, scale, thick + 2)
    pad = max(2, round(4 * scale))
    h = min(th + base + 2 * pad, sheet.shape[0] - y)
    w = min(tw + 2 * pad, sheet.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    letters = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(letters, text, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
    # The outline is the letters grown by a pixel: text drawn thicker advances its glyphs
    # differently, so a second putText would drift away from the letters.
    outline = cv2.dilate(letters, np.ones((3, 3), np.uint8))
    masks = [m[:h, :w, None].astype(np.float32) / 255.0 for m in (outline, letters)]
    region = sheet[y : y + h, x : x + w]
    region *= 1.0 - masks[0]  # dark outline
    region += masks[1]  # white letters over it
    np.clip(region, 0.0, 1.0, out=region)


def sheet_array(views: Views, labels: bool = True, limit: int | None = SHEET_MAX) -> np.ndarray:
    """H×W×3 float32: ``views.contact_sheet`` in rows of ``COLUMNS`` (strided so its longest
    side is at most ``limit``), each tile labelled (``view_label``) when ``labels``."""
    sheet = np.ascontiguousarray(views.contact_sheet(COLUMNS).data, np.float32)
    tile_h = max(im.height for im in views.images)
    tile_w = max(im.width for im in views.images)
    step = 1 if limit is None else int(np.ceil(max(sheet.shape[:2]) / limit))
    if step > 1:
        sheet = np.ascontiguousarray(sheet[::step, ::step])
    if labels:
        for i in range(len(views)):
            r, c = divmod(i, COLUMNS)
            x, y = -(-c * tile_w // step), -(-r * tile_h // step)
            _stamp(sheet, view_label(views, i), x, y, (tile_w // step, tile_h // step))
    return sheet
