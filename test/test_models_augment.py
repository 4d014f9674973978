"""The training augmentations of the per-frame embedding models (random shift, random resized crop, colour jitter)
and their config options."""

from __future__ import annotations

import pytest
import torch

from ssl_robot.models import TCN, SingleViewTCNConfig, TCNConfig
from ssl_robot.models.encoders import LUMA_WEIGHTS, color_jitter, random_resized_crop

SMALL = dict(image_size=16, encoder_widths=(4, 8), embedding_dim=4)


def images(count: int = 32, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def luma(rgb: torch.Tensor) -> torch.Tensor:
    return sum(weight * rgb[:, c] for c, weight in enumerate(LUMA_WEIGHTS))


def test_color_jitter_at_zero_strength_is_the_identity():
    batch = images()
    assert torch.equal(color_jitter(batch, 0, 0, 0), batch)


def test_brightness_scales_each_image_by_its_own_factor_within_the_strength():
    # Dim images, so that no pixel clips and the factor is the ratio of output to input.
    batch = images() * 0.4 + 0.05
    jittered = color_jitter(batch, 0.5, 0, 0, torch.Generator().manual_seed(1))
    ratios = jittered / batch
    factors = ratios.flatten(1).mean(dim=1)
    torch.testing.assert_close(ratios, factors[:, None, None, None].expand_as(ratios))
    assert factors.min() >= 0.5 and factors.max() <= 1.5
    assert factors.std() > 0.1  # independent per image: views of one time get different colours


def test_contrast_scales_the_difference_from_the_mean_grey_level():
    batch = images() * 0.4 + 0.3
    jittered = color_jitter(batch, 0, 0.5, 0, torch.Generator().manual_seed(2))
    mean = luma(batch).mean(dim=(1, 2))[:, None, None, None]
    factors = ((jittered - mean) / (batch - mean)).flatten(1).median(dim=1).values
    torch.testing.assert_close(jittered, mean + factors[:, None, None, None] * (batch - mean))
    assert factors.min() >= 0.5 and factors.max() <= 1.5 and factors.std() > 0.1


def test_saturation_scales_each_pixels_colour_about_its_grey_level():
    batch = images() * 0.2 + 0.4
    jittered = color_jitter(batch, 0, 0, 0.5, torch.Generator().manual_seed(3))
    grey = luma(batch)[:, None]
    torch.testing.assert_close(luma(jittered)[:, None], grey)
    factors = ((jittered - grey) / (batch - grey)).flatten(1).median(dim=1).values
    torch.testing.assert_close(jittered, grey + factors[:, None, None, None] * (batch - grey))
    assert factors.min() >= 0.5 and factors.max() <= 1.5 and factors.std() > 0.1


def test_color_jitter_stays_in_the_unit_range():
    jittered = color_jitter(images(), 1.0, 1.0, 1.0, torch.Generator().manual_seed(4))
    assert jittered.min() >= 0 and jittered.max() <= 1


def test_a_full_scale_crop_is_the_identity():
    batch = images()
    assert torch.equal(random_resized_crop(batch, 1.0), batch)


def test_crops_cover_at_least_the_minimum_area_at_the_allowed_aspect_ratios():
    # Channel 0 ramps from 0 to 1 left to right, channel 1 top to bottom. Bilinear resampling keeps a ramp a
    # ramp, so the slope of the result measures how much of the image's width (height) the crop spans, and
    # its first value where the crop starts. Edge pixels are left out: they may sample half a pixel outside.
    size, min_scale = 16, 0.4
    ramp = (torch.arange(size) + 0.5) / size
    image = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), torch.zeros(size, size)])
    cropped = random_resized_crop(image.expand(300, 3, size, size), min_scale, torch.Generator().manual_seed(5))
    across, down = cropped[:, 0, size // 2, 1:-1], cropped[:, 1, 1:-1, size // 2]
    torch.testing.assert_close(across.diff(dim=1), across.diff(dim=1)[:, :1].expand(-1, size - 3))
    width = (across[:, -1] - across[:, 0]) / (size - 3) * size
    height = (down[:, -1] - down[:, 0]) / (size - 3) * size
    area = width * height
    assert area.min() >= min_scale - 1e-4 and area.max() <= 1 + 1e-4
    assert area.min() < min_scale + 0.05 and area.max() > 0.95  # the whole range of areas is drawn
    ratio = width / height
    assert ratio.min() >= 3 / 4 - 1e-3 and ratio.max() <= 4 / 3 + 1e-3
    left = across[:, 0] - width / size * 1.5  # where the crop's left edge falls on the ramp
    assert left.min() >= -1e-4 and (left + width).max() <= 1 + 1e-4  # inside the image
    assert left.std() > 0.05  # and placed differently for different images


@pytest.mark.parametrize('field, value, message', [
    ('augment_brightness', -0.1, r'TCNConfig.augment_brightness must be >= 0, got -0.1'),
    ('augment_contrast', 1.5, r'TCNConfig.augment_contrast must be in \[0, 1\]'),
    ('augment_saturation', 'x', r"TCNConfig.augment_saturation must be a number, got 'x'"),
    ('augment_crop_scale', 0, r'TCNConfig.augment_crop_scale must be > 0, got 0'),
    ('augment_crop_scale', 1.2, r'TCNConfig.augment_crop_scale must be in \(0, 1\], got 1.2'),
])
def test_bad_augmentation_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        TCNConfig(**SMALL, **{field: value})


def test_colour_jitter_of_grey_images_is_refused():
    with pytest.raises(ValueError, match=r'SingleViewTCNConfig.augment_saturation needs RGB images'):
        SingleViewTCNConfig(**SMALL, channels=1, augment_saturation=0.2)
    SingleViewTCNConfig(**SMALL, channels=1, augment_brightness=0.2)


@pytest.mark.parametrize('option', [dict(augment_shift_px=3), dict(augment_crop_scale=0.6),
                                    dict(augment_brightness=0.4), dict(augment_contrast=0.4),
                                    dict(augment_saturation=0.4)])
def test_each_augmentation_applies_in_training_only(option):
    model = TCN(TCNConfig(**SMALL, **option))
    batch = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    assert torch.equal(model.embed(batch), model.embed(batch))
    model.train()
    torch.manual_seed(1)
    first = model._embed(batch)
    torch.manual_seed(2)
    assert not torch.allclose(first, model._embed(batch))
    plain = TCN(TCNConfig(**SMALL)).train()
    plain.load_state_dict(model.state_dict())
    assert torch.equal(plain._embed(batch), plain._embed(batch))  # without the option, training is deterministic
