"""Dataset loading: official CIFAR-10 python release or an ImageFolder tree/archive, decoded once."""

from build.data.dataset import Dataset, ImageSet, load_dataset, resolve_data_spec

__all__ = ["Dataset", "ImageSet", "load_dataset", "resolve_data_spec"]
