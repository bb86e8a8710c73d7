r"""Deep Compression's second and third steps (Han et al. 2016): weight sharing and its bytes.

**Weight sharing.** The nonzero weights of a layer are clustered into :math:`k = 2^b - 1` groups by
k-means (scikit-learn's ``KMeans``, Lloyd's algorithm), started from :math:`k` centroids spaced
linearly between the smallest and largest weight — the paper's best initialisation, since it
keeps the rare large weights their own centroids. Every weight becomes its centroid, so the layer
stores a :math:`b`-bit index per weight and one codebook of :math:`k` float32 values; the
:math:`2^b`-th code is zero, which the storage's filler entries need. Zeros stay zero (pruned
weights are not clustered). Lloyd's iterations only lower the squared error of the
linear grid they start from, so the result is at least as close as uniform :math:`b`-bit
levels between the extremes.

**Sparse storage with relative indices.** Each nonzero is stored with the *gap* to the previous
one in ``index_bits`` bits. A gap the field cannot hold is bridged by filler entries (a zero
value), one per :math:`2^{\text{index\_bits}}` positions, as in the paper's Figure 2:

.. math:: \text{entries} = \sum_i \lceil d_i / 2^{\text{index\_bits}} \rceil, \qquad
          \text{bits} = \text{entries}\,(\text{value\_bits} + \text{index\_bits})
                        + 32 \cdot 2^{\text{value\_bits}}

(:math:`d_i` the distance from the previous nonzero, the first counted from position −1). Han
et al. add Huffman coding on top; this stops before it. Biases are counted at 32 bits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from dlcore._checks import check_int, check_type
from dlcore.compress.pruning import linear_layers

__all__ = ["share_weights", "relative_index_entries", "deep_compression_bytes"]


def _weight(layer: nn.Linear) -> torch.Tensor:
    orig = getattr(layer, "weight_orig", None)  # a pruned layer: its current weight
    return (orig * layer.weight_mask if orig is not None else layer.weight).detach()


def _cluster(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(codebook, labels) of 1-D ``values`` by k-means from a linear initialisation."""
    from sklearn.cluster import KMeans  # heavy import: only when sharing

    k = min(k, len(np.unique(values)))  # no more clusters than distinct values
    init = np.linspace(values.min(), values.max(), k, dtype=np.float64)[:, None]
    km = KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd", tol=0.0)
    labels = km.fit_predict(values[:, None].astype(np.float64))
    return km.cluster_centers_[:, 0], labels


def share_weights(model: nn.Module, bits: int = 5) -> dict[str, torch.Tensor]:
    """Replace each ``nn.Linear``'s nonzero weights, in place, by their k-means centroid among
    ``2**bits − 1`` shared values (the last ``bits``-bit code is zero); returns each layer's
    codebook (float32). Pruned layers keep their masks (the shared values go into
    ``weight_orig``), so training can go on; retraining moves the weights off the codebook,
    so share again afterwards."""
    bits = check_int("bits", bits, 2, 16)
    books = {}
    for name, layer in linear_layers(model).items():
        w = _weight(layer)
        nonzero = w != 0
        if not bool(nonzero.any()):
            books[name] = torch.zeros(0)
            continue
        values = w[nonzero].cpu().numpy()
        codebook, labels = _cluster(values, 2**bits - 1)
        shared = torch.zeros_like(w)
        shared[nonzero] = torch.as_tensor(codebook[labels], dtype=w.dtype).to(
            w.device
        )
        target = getattr(layer, "weight_orig", layer.weight)
        with torch.no_grad():
            target.copy_(shared)
        books[name] = torch.as_tensor(codebook, dtype=torch.float32)
    return books


def relative_index_entries(weight: torch.Tensor, index_bits: int) -> int:
    """Entries (nonzeros plus fillers) of ``weight``'s nonzeros stored with ``index_bits``-bit
    gaps, flattened in row-major order (see the module doc)."""
    check_type("weight", weight, torch.Tensor)
    index_bits = check_int("index_bits", index_bits, 1, 32)
    positions = torch.nonzero(weight.detach().flatten()).flatten()
    if positions.numel() == 0:
        return 0
    gaps = torch.diff(positions, prepend=positions.new_tensor([-1]))  # >= 1
    span = 2**index_bits
    return int(((gaps + span - 1) // span).sum())  # ceil(d / span) each


def deep_compression_bytes(
    model: nn.Module, *, value_bits: int, index_bits: int
) -> int:
    """Bytes of ``model``'s Linear layers stored as in Deep Compression without Huffman coding:
    relative-index sparse weights with ``value_bits``-bit codebook indices, one float32
    codebook of ``2**value_bits`` entries per layer, float32 biases."""
    value_bits = check_int("value_bits", value_bits, 1, 32)
    index_bits = check_int("index_bits", index_bits, 1, 32)
    bits = 0
    for layer in linear_layers(model).values():
        entries = relative_index_entries(_weight(layer), index_bits)
        bits += entries * (value_bits + index_bits) + 32 * 2**value_bits
        if layer.bias is not None:
            bits += 32 * layer.bias.numel()
    return math.ceil(bits / 8)
