"""What a technique costs and what it returns: parameters, FLOPs, time, memory, bytes — and the Ledger.

Every measurement here delegates to a tool PyTorch users already trust, or to an exact counter:

* FLOPs  — ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as **2** FLOPs);
* time   — ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up, CUDA sync, medians), with
  all of torch's threads; :func:`compare_times` alternates contenders over rounds and compares
  them by the median of per-round ratios; :func:`matmul_peak_flops` is the machine's peak;
* memory — peak growth: ``torch.cuda.max_memory_allocated`` on CUDA, the kernel's resident-set
  high-water mark (``VmHWM``) on Linux CPUs, nothing (``None``) where no exact counter exists;
* bytes  — the length of ``torch.save(model.state_dict())``.

A chapter records each experiment as one :class:`Row` of a :class:`Ledger`; the row measures only
the part wrapped in :meth:`Row.timed`::

    ledger = Ledger("mlp")
    with ledger.row("784-500-10 · Adam") as row:
        with row.timed():  # train_s and peak_mem_bytes of training only
            history = fit(model, loss_fn, opt, train, epochs=3)
        row.invest(
            params=count_params(model),
            flops_per_sample=flops_per_sample(model, x[:1]),
        )
        row.returns(test_acc=evaluate(model, test)["accuracy"])
    ledger  # a table in the notebook
    ledger.select("train_s", "test_acc")  # only the columns one question needs
    plot_ledger(ledger, x="train_s", y="test_acc")  # dlcore.plot: cost vs return
    pareto_front(ledger, minimize=("train_s",), maximize=("test_acc",))  # the unbeaten rows
"""

from dlcore.measure.costs import (
    count_flops,
    count_params,
    flops_per_sample,
    model_bytes,
)
from dlcore.measure.ledger import INVESTMENT_KEYS, RETURN_KEYS, Ledger, Row
from dlcore.measure.memory import MemoryUsage, peak_memory, track_memory
from dlcore.measure.pareto import pareto_front
from dlcore.measure.timing import (
    Comparison,
    Timing,
    compare_times,
    matmul_peak_flops,
    time_it,
)
from dlcore.measure.units import (
    format_bytes,
    format_count,
    format_seconds,
    format_value,
)

__all__ = [
    "INVESTMENT_KEYS",
    "RETURN_KEYS",
    "count_params",
    "count_flops",
    "flops_per_sample",
    "Timing",
    "time_it",
    "Comparison",
    "compare_times",
    "matmul_peak_flops",
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
    "pareto_front",
]
