"""The embedded optdigits set."""

import numpy as np
import pytest

from cnnkit import ConfigError, load_optdigits


@pytest.mark.parametrize(
    ("split", "count", "class_counts"),
    [
        ("train", 3823, [376, 389, 380, 389, 387, 376, 377, 387, 380, 382]),
        ("test", 1797, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    ],
)
def test_optdigits_counts_match_the_uci_description(split, count, class_counts):
    images, labels = load_optdigits(split)
    assert images.shape == (count, 1, 8, 8) and images.dtype == np.float32
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == class_counts
    assert images.min() == 0.0 and images.max() == 1.0


def test_unknown_split():
    with pytest.raises(ConfigError, match=r"split must be 'train' or 'test', got 'valid'"):
        load_optdigits("valid")
