"""parity.testing, the helpers for users' own tests (`assert_parity`, `randomize_torch`, ...): a
public name for parity.core.testing, where they live."""

from .core.testing import assert_parity, odd_size, random_images, randomize_state_dict, randomize_torch

__all__ = ["assert_parity", "odd_size", "random_images", "randomize_state_dict", "randomize_torch"]
