"""Figures draw any text a user's files can hold: ids and class names go into titles as they are."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from heatcheck.report import figures

TEXTS = {
    "latin-1 file name": "cat/caf\udce9.png",  # how Python holds a file name that is not UTF-8
    "other lone surrogate": "x\ud800y",
    "script the font lacks": "猫/写真.png",
    "control characters": "a\nb\x00c\td",
    "mathtext": "$x^2$ and 50$",
}


@pytest.mark.parametrize("text", list(TEXTS.values()), ids=list(TEXTS))
def test_any_id_text_is_drawn(text: str) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as under pytest's filterwarnings = error
        png = figures.gallery_row(image, mask, [(text, np.random.default_rng(0).random((8, 8)))], text)
        curve = figures.line_plot([figures.Series(text, [0, 1], [0.5, 0.2])], xlabel=text, ylabel="y",
                                  xticklabels=[text, "b"])
    assert png.startswith(b"\x89PNG")
    assert curve.startswith(b"\x89PNG")


def test_drawable_text_keeps_the_bytes_visible_and_stays_on_one_line() -> None:
    assert figures.drawable("cat/caf\udce9.png") == "cat/caf\\xe9.png"
    assert figures.drawable("a\nb") == "a\\nb"
    assert figures.drawable("猫") == "猫"
