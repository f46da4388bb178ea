#!/usr/bin/env python3
"""Render the app's example videos with numpy + PyAV (no footage, no licences).

    python assets/render_examples.py          # writes assets/*.mp4 next to this file

Each clip is 320x240, 25 fps, H.264, a few hundred kB:
- calm_street.mp4 (8 s): a quiet street; a car drives slowly across, clouds drift.
- explosion.mp4 (10 s): the same street; at 4 s a flash, a fireball, camera shake and smoke.
- scuffle.mp4 (10 s): two figures walk, then from 4 s to 7 s jerk around each other under a
  shaking camera, then walk apart.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS = 320, 240, 25
HERE = Path(__file__).resolve().parent

_Y, _X = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)


def _street(t: float) -> np.ndarray:
    """The background at time t: sky with drifting clouds, houses, road (float RGB in [0, 255])."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    sky = _Y < 150
    fade = (_Y / 150.0)[..., None]
    img[:] = (1 - fade) * np.array([90, 140, 220]) + fade * np.array([180, 210, 240])
    for cx, cy, r in ((60, 40, 22), (200, 30, 28), (290, 60, 18)):
        x = (cx + 6 * t) % (WIDTH + 60) - 30
        cloud = np.exp(-(((_X - x) / (2 * r)) ** 2 + ((_Y - cy) / r) ** 2) * 2)
        img += (cloud * sky)[..., None] * (np.array([250, 250, 250]) - img) * 0.8
    for i, (x0, w, h, colour) in enumerate(((10, 60, 70, (150, 90, 70)), (80, 50, 55, (190, 170, 120)),
                                            (140, 70, 85, (120, 120, 140)), (220, 45, 60, (170, 100, 90)),
                                            (270, 50, 75, (140, 150, 110)))):
        house = (_X >= x0) & (_X < x0 + w) & (_Y >= 150 - h) & (_Y < 150)
        img[house] = colour
        window = house & ((_X - x0) % 16 > 8) & ((_Y - 150 + h) % 20 > 10) & (_Y < 140)
        img[window] = (240, 230, 160)
    img[_Y >= 150] = (70, 70, 75)
    img[(_Y >= 193) & (_Y < 197) & ((_X // 20) % 2 == 0)] = (230, 230, 230)
    img[(_Y >= 150) & (_Y < 156)] = (160, 160, 160)
    return img


def _car(img: np.ndarray, x: float, y: float = 175) -> None:
    body = (_X >= x) & (_X < x + 50) & (_Y >= y) & (_Y < y + 16)
    roof = (_X >= x + 10) & (_X < x + 38) & (_Y >= y - 11) & (_Y < y)
    img[body | roof] = (200, 40, 40)
    img[roof & (_Y >= y - 9) & (_Y < y - 2) & (_X >= x + 13) & (_X < x + 35)] = (160, 200, 230)
    for wx in (x + 10, x + 40):
        img[((_X - wx) ** 2 + (_Y - y - 16) ** 2) < 36] = (20, 20, 20)


def _figure(img: np.ndarray, x: float, y: float, colour) -> None:
    img[((_X - x) ** 2 + (_Y - y + 32) ** 2) < 30] = (230, 190, 160)
    img[(np.abs(_X - x) < 6) & (_Y >= y - 26) & (_Y < y)] = colour
    img[(np.abs(_X - x) < 5) & (_Y >= y) & (_Y < y + 16) & (np.abs(_X - x) > 1)] = (40, 40, 60)


def _shake(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    dx, dy = (rng.normal(0, amount, 2)).round().astype(int)
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1)


def calm_street(i: int, rng: np.random.Generator) -> np.ndarray:
    t = i / FPS
    img = _street(t)
    _car(img, -60 + 30 * t)
    _figure(img, 250 - 4 * t, 168, (60, 90, 160))
    return img


def explosion(i: int, rng: np.random.Generator) -> np.ndarray:
    t = i / FPS
    img = _street(t)
    bang = 4.0
    if t < bang:
        _car(img, 20 + 25 * t)
        return img
    age = t - bang
    wreck = (_X >= 120) & (_X < 170) & (_Y >= 178) & (_Y < 192)
    img[wreck] = (40, 30, 30)
    r = 30 + 100 * (1 - np.exp(-age * 1.5))
    d = np.sqrt((_X - 150) ** 2 + (_Y - 170) ** 2)
    angle = np.arctan2(_Y - 170, _X - 150)
    ragged = 1 + 0.15 * np.sin(7 * angle + 3 * age) + 0.1 * np.sin(13 * angle - 5 * age)
    smoke = np.clip(1 - np.abs(_Y - (110 - 12 * age)) / (30 + 10 * age), 0, 1) * min(age / 2, 0.85)
    smoke = smoke * np.clip(1 - np.abs(_X - 150 - 5 * age) / (60 + 20 * age), 0, 1)
    img = img * (1 - smoke[..., None]) + 60 * smoke[..., None]
    heat = np.clip(1 - d / (r * ragged), 0, 1) ** 0.5 * np.exp(-age * 0.35)
    core = heat[..., None] ** 2
    fire = core * np.array([255, 245, 190]) + (1 - core) * np.array([250, 110, 20])
    img = img * (1 - heat[..., None]) + fire * heat[..., None]
    if age < 0.4:                                                  # the flash
        img = img + (255 - img) * (1 - age / 0.4)
    return _shake(img, rng, 6 * np.exp(-age))


def scuffle(i: int, rng: np.random.Generator) -> np.ndarray:
    t = i / FPS
    img = _street(t)
    _car(img, 330 - 20 * t)
    if t < 4:
        a, b = 60 + 15 * t, 260 - 15 * t
    elif t < 7:
        a = 160 - 14 + rng.normal(0, 8)
        b = 160 + 14 + rng.normal(0, 8)
    else:
        a, b = 146 - 25 * (t - 7), 174 + 25 * (t - 7)
    jump = 6 * abs(np.sin(9 * t)) if 4 <= t < 7 else 0
    _figure(img, a, 178 - jump, (50, 120, 60))
    _figure(img, b, 178 - (6 - jump if jump else 0), (160, 60, 140))
    if 4 <= t < 7:
        img = _shake(img, rng, 5)
    return img


def render(path: Path, draw, seconds: float, seed: int = 0) -> Path:
    """Write `seconds` of `draw(frame_index, rng)` frames to an H.264 mp4 at `path`."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "28", "preset": "medium"}
        for i in range(int(seconds * FPS)):
            frame = np.clip(draw(i, rng), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


EXAMPLES = {"calm_street.mp4": (calm_street, 8.0), "explosion.mp4": (explosion, 10.0),
            "scuffle.mp4": (scuffle, 10.0)}


def main() -> None:
    for name, (draw, seconds) in EXAMPLES.items():
        path = render(HERE / name, draw, seconds)
        print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
