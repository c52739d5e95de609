from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving.pixels import check_dims, from_chw, refit, to_chw


def test_to_chw_converts_channels_and_resizes() -> None:
    img = Image.new("RGB", (50, 30), (10, 200, 90))
    rgb = to_chw(img, (3, 24, 40))
    assert rgb.shape == (3, 24, 40) and rgb.dtype == np.uint8 and [int(rgb[c, 0, 0]) for c in range(3)] == [10, 200, 90]
    gray = to_chw(img, (1, 28, 28))
    assert gray.shape == (1, 28, 28) and np.all(gray == img.convert("L").getpixel((0, 0)))


def test_from_chw_is_the_inverse_of_to_chw_at_the_same_size() -> None:
    rng = np.random.default_rng(0)
    for dims in ((3, 9, 7), (1, 5, 6)):
        image = rng.integers(0, 256, dims, dtype=np.uint8)
        assert np.array_equal(to_chw(from_chw(image), dims), image)


def test_refit_leaves_a_fitting_batch_alone_and_resizes_the_rest() -> None:
    batch = np.stack([np.full((3, 32, 32), v, np.uint8) for v in (0, 100, 255)])
    assert refit(batch, (3, 32, 32)) is batch
    wide = refit(batch, (3, 48, 48))
    assert wide.shape == (3, 3, 48, 48) and [int(x) for x in wide[:, 0, 0, 0]] == [0, 100, 255]
    gray = refit(batch, (1, 28, 28))
    assert gray.shape == (3, 1, 28, 28) and [int(x) for x in gray[:, 0, 0, 0]] == [0, 100, 255]
    assert refit(batch[:0], (1, 28, 28)).shape == (0, 1, 28, 28)


@pytest.mark.parametrize("dims", [(2, 32, 32), (3, 32), (3, 0, 32)])
def test_only_gray_or_colour_images_of_some_size(dims: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="C = 1 or 3"):
        check_dims(dims)
