"""Model compression, measured: pruning, quantization, distillation, low rank, export.

In short::

    from dlcore.compress import magnitude_prune, quantize_affine, distill, low_rank
    magnitude_prune(model, 0.9, scope="global")     # torch.nn.utils.prune masks, in place
    q, scale, zero_point = quantize_affine(w, bits=8, symmetric=True, axis=0)
    small = prune_neurons(model, 0.5)               # a genuinely smaller dense MLP
    ledger.add("pruned 90%", **compression_costs(model, x[:1], test_data=test))

One module per technique, every public name re-exported here:

- ``pruning``: magnitude pruning (layer-wise, global, Han et al.'s threshold rule), schedules
  for :func:`dlcore.train.fit`, sparsity reports and CSR bytes;
- ``structured``: removing hidden neurons of an MLP (:func:`prune_neurons`);
- ``weight_sharing``: Deep Compression's k-means weight sharing and relative-index bytes;
- ``quantization``: affine quantization from scratch, the integer-matmul :class:`Int8Linear`,
  weight-only int8/int4, fake quantization for quantization-aware training;
- ``library_paths``: dynamic int8 through ``torch.ao`` (deprecated) and torchao;
- ``precision``: bf16 inference and bf16 autocast training, and what the machine supports;
- ``distillation``: :class:`DistillationLoss` and :func:`distill` (Hinton et al. 2015);
- ``low_rank``: SVD factorization of Linear layers;
- ``accounting``: bytes, parameters, FLOPs and latency as one ledger row;
- ``onnx_export``: ONNX export and onnxruntime inference (optional extra ``onnx``).
"""

from dlcore.compress.accounting import compression_costs, nonzero_params
from dlcore.compress.distillation import DistillationLoss, distill, teacher_logits
from dlcore.compress.library_paths import (
    quantize_dynamic_ao,
    quantize_dynamic_torchao,
    torchao_available,
)
from dlcore.compress.low_rank import (
    factorize_linear,
    low_rank,
    rank_for_energy,
    rank_for_flops,
)
from dlcore.compress.onnx_export import (
    export_onnx,
    onnx_session,
    quantize_onnx_dynamic,
    run_onnx,
)
from dlcore.compress.precision import Autocast, CastModel, bf16_support
from dlcore.compress.pruning import (
    LayerSparsity,
    PruningSchedule,
    SparsityReport,
    csr_bytes,
    cubic_sparsity,
    linear_layers,
    magnitude_prune,
    prune_to_sparsity,
    remove_pruning,
    sparsity_report,
    threshold_prune,
    to_sparse_csr,
)
from dlcore.compress.quantization import (
    FakeQuantLinear,
    Int8Linear,
    WeightOnlyLinear,
    choose_qparams,
    dequantize_affine,
    fake_quantize,
    int8_matmul,
    prepare_qat,
    qrange,
    quantize_affine,
    quantize_linears,
    quantize_with,
    torch_quantize,
)
from dlcore.compress.structured import mask_neurons, prune_neurons, select_neurons
from dlcore.compress.weight_sharing import (
    deep_compression_bytes,
    relative_index_entries,
    share_weights,
)

__all__ = [
    # pruning
    "linear_layers",
    "magnitude_prune",
    "prune_to_sparsity",
    "threshold_prune",
    "remove_pruning",
    "PruningSchedule",
    "cubic_sparsity",
    "LayerSparsity",
    "SparsityReport",
    "sparsity_report",
    "csr_bytes",
    "to_sparse_csr",
    "select_neurons",
    "mask_neurons",
    "prune_neurons",
    "share_weights",
    "relative_index_entries",
    "deep_compression_bytes",
    # quantization
    "qrange",
    "choose_qparams",
    "quantize_affine",
    "quantize_with",
    "dequantize_affine",
    "torch_quantize",
    "int8_matmul",
    "Int8Linear",
    "WeightOnlyLinear",
    "quantize_linears",
    "fake_quantize",
    "FakeQuantLinear",
    "prepare_qat",
    "quantize_dynamic_ao",
    "quantize_dynamic_torchao",
    "torchao_available",
    "bf16_support",
    "CastModel",
    "Autocast",
    # distillation, low rank
    "DistillationLoss",
    "teacher_logits",
    "distill",
    "rank_for_energy",
    "rank_for_flops",
    "factorize_linear",
    "low_rank",
    # accounting, export
    "nonzero_params",
    "compression_costs",
    "export_onnx",
    "onnx_session",
    "run_onnx",
    "quantize_onnx_dynamic",
]
