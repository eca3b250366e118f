"""Keras 3 implementations of every ResNet variant in `resnet_spec` (work in progress)."""
