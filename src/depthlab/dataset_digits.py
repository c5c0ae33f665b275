"""scikit-learn's shipped 8x8 digits, split stratified."""

from __future__ import annotations

import math
from dataclasses import dataclass

from depthlab.data_arrays import CLASSIFICATION, Arrays
from depthlab.dataset_registry import DATASETS, Data
from depthlab.errors import ConfigError

DIGITS_SAMPLES, DIGITS_CLASSES = 1797, 10


def _digits_split(test_fraction: float) -> tuple[int, int]:
    """(num_train, num_test) of the digits as scikit-learn's train_test_split cuts them."""
    num_test = math.ceil(test_fraction * DIGITS_SAMPLES)
    return DIGITS_SAMPLES - num_test, num_test


@DATASETS.register_option
@dataclass
class Digits(Data):
    """scikit-learn's shipped 8x8 digits: 1797 images (64 pixels, values 0..16), 10 classes.

    A stratified split with ``test_fraction`` of the images held out.
    """

    name: str = "digits"
    test_fraction: float = 0.25  # fraction of the samples held out for testing (stratified)
    seed: int = 0  # the data set's own draw and split (apart from the network's seed)

    def arrays(self) -> Arrays:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=self.test_fraction, random_state=self.seed, stratify=y
        )
        return Arrays(x_tr, y_tr, x_te, y_te, CLASSIFICATION, DIGITS_CLASSES)

    def sizes(self) -> tuple[int, int, int, int]:
        return 8 * 8, DIGITS_CLASSES, *_digits_split(self.test_fraction)

    def check(self, key: str = "data") -> None:
        """Besides the ranges: a stratified split needs one image per class in each split."""
        num_train, num_test = _digits_split(self.test_fraction)
        if min(num_train, num_test) < DIGITS_CLASSES:
            raise ConfigError(
                f"{key}.test_fraction",
                self.test_fraction,
                f"a fraction leaving >= {DIGITS_CLASSES} of the {DIGITS_SAMPLES} images "
                "(one per class) in each split",
                f"{num_train} training and {num_test} test images",
            )
