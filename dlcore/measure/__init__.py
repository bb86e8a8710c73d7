"""What a technique costs and what it returns: parameters, FLOPs, time, memory, bytes — and the Ledger.

Every measurement here delegates to the tool PyTorch users already trust:

* FLOPs  — ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as **2** FLOPs);
* time   — ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up, CUDA sync, medians);
* memory — ``torch.cuda.max_memory_allocated`` on CUDA, sampled process RSS (``psutil``) on CPU;
* bytes  — the length of ``torch.save(model.state_dict())``.

A chapter records each experiment as one :class:`Row` of a :class:`Ledger`::

    ledger = Ledger("mlp")
    with ledger.row("784-500-10 · Adam") as row:   # times the block, tracks peak memory
        history = fit(model, loss_fn, opt, train, epochs=3)
        row.invest(params=count_params(model), flops_per_sample=flops_per_sample(model, x[:1]))
        row.returns(test_acc=evaluate(model, test)["accuracy"])
    ledger                                          # a table in the notebook
    ledger.plot(x="train_s", y="test_acc")          # cost vs return
"""

from dlcore.measure.costs import (
    RSS_SAMPLE_INTERVAL_S,
    MemoryUsage,
    Timing,
    count_flops,
    count_params,
    flops_per_sample,
    model_bytes,
    peak_memory,
    time_it,
    track_memory,
)
from dlcore.measure.ledger import INVESTMENT_KEYS, RETURN_KEYS, Ledger, Row
from dlcore.measure.units import format_bytes, format_count, format_seconds, format_value

__all__ = [
    "INVESTMENT_KEYS",
    "RETURN_KEYS",
    "RSS_SAMPLE_INTERVAL_S",
    "count_params",
    "count_flops",
    "flops_per_sample",
    "Timing",
    "time_it",
    "MemoryUsage",
    "track_memory",
    "peak_memory",
    "model_bytes",
    "format_bytes",
    "format_count",
    "format_seconds",
    "format_value",
    "Row",
    "Ledger",
]
