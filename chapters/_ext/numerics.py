"""Two numeric paths for the same chapters: ``DLCORE_NUMERICS=native`` or ``DLCORE_NUMERICS=portable``.

`make test` executes every chapter twice, nbval under ``portable`` and the book build under ``native``, so
a claim that holds only by rounding luck fails there rather than on a reader's machine. This file is the
one place that says what the two settings mean; the Sphinx build (as an extension) and nbval
(``chapters/conftest.py``) both apply it before any kernel starts, and ``tests/test_numerics.py`` proves
on the machine running the tests that the two paths give different bits.

``native``
    the code paths the machine picks by itself, as ``make book`` and readers run them: the instruction-set
    variables below are removed from the environment (thread counts are left alone).
``portable``
    one rung down the instruction-set ladder, chosen from the rung ATen picks on this machine::

      ATen picks  portable sets                               what then differs
      AVX512      MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=avx2      MKL's AVX2 matrix kernels (most laptops'),
                                                              ATen's vectors half as wide (sums reorder)
      AVX2        MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=default   ATen's generic kernels: torch.randn draws
                                                              other numbers, exp/tanh/softmax round
                                                              otherwise; MKL's reproducible mode: skinny
                                                              products (10 outputs, matrix-vector), float64
      SVE256      ATEN_CPU_CAPABILITY=default                 ATen's generic kernels
      other       OMP_NUM_THREADS=MKL_NUM_THREADS=1           parallel sums split elsewhere (the weakest
                  (2 where torch runs one thread)             rung: only large reductions change)

    The AVX512 row is the issue's proposal, checked there (``MKL_CBWR=AVX2`` moved a chaotic training run
    from 0.927 to 0.897 accuracy); the machine this was written on has no AVX-512, and
    ``tests/test_numerics.py`` checks the difference wherever it runs.

Measured on the 2-core AMD EPYC (Zen 3, AVX2) this was written on, one thread, medians of alternating
rounds against ``native``: an MLP training step (784-500-300-10, batch 128) costs 1.13-1.17x, a
cross-entropy over 10,000 rows 3.7x, ``dlcore.augment.random_affine`` 2.2x, ``torch.randn`` 2.2-3.6x. On
that machine ``MKL_CBWR=AVX2`` (like AVX, SSE4_2 or SSE2) changes only skinny and float64 products and
leaves large float32 ones bit-identical, and ``MKL_CBWR=COMPATIBLE``, which would change them, costs 2.1-2.9x per training
step, more than a chapter's 2.5-minute budget can absorb; so ATen's generic kernels carry the difference.

Run ``python chapters/_ext/numerics.py`` to print what each setting sets on this machine.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping, MutableMapping

__all__ = [
    "ENV_NAME",
    "SETTINGS",
    "VARIABLES",
    "apply",
    "describe",
    "environment",
    "native_machine",
]

ENV_NAME = "DLCORE_NUMERICS"
SETTINGS = ("native", "portable")
# What selects an instruction set; `native` removes these.
ISA_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "DNNL_MAX_CPU_ISA",
)
# Every variable known to change floating-point bits: the book's execution cache keys on all of them.
VARIABLES = (*ISA_VARIABLES, "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"


@functools.cache
def native_machine() -> tuple[str, int]:
    """ATen's CPU capability and torch's thread count here when nothing caps them.

    Asked in a fresh interpreter without the instruction-set variables: ATen reads them once, at its first
    dispatch, so the answer of an interpreter that already ran torch under another setting would be stale.
    """
    env = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"could not ask torch for the CPU capability:\n{out.stderr[-2000:]}"
        )
    capability, threads = out.stdout.split()[-2:]
    return capability, int(threads)


def environment(
    setting: str, capability: str, threads: int
) -> dict[str, str | None]:
    """The variables ``setting`` sets where ATen picks ``capability`` and torch runs ``threads`` threads.

    ``None`` means the variable is removed. Raises ValueError for an unknown setting.
    """
    if setting not in SETTINGS:
        raise ValueError(f"{ENV_NAME} must be one of {SETTINGS}, got {setting!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if setting == "native":
        return dict.fromkeys(ISA_VARIABLES)
    # Start from native, so a variable left over in the caller's shell cannot blur the two paths.
    env: dict[str, str | None] = dict.fromkeys(ISA_VARIABLES)
    if capability == "AVX512":
        env.update(MKL_CBWR="AVX2", ATEN_CPU_CAPABILITY="avx2")
    elif capability == "AVX2":
        env.update(MKL_CBWR="AVX2", ATEN_CPU_CAPABILITY="default")
    elif capability == "SVE256":
        env.update(ATEN_CPU_CAPABILITY="default")
    else:  # no lower rung: change where parallel loops split instead
        fewer = "1" if threads > 1 else "2"
        env.update(OMP_NUM_THREADS=fewer, MKL_NUM_THREADS=fewer)
    return env


def describe(changes: Mapping[str, str | None]) -> str:
    """What a setting sets, e.g. ``"ATEN_CPU_CAPABILITY=default MKL_CBWR=AVX2"``."""
    assigned = [f"{k}={v}" for k, v in sorted(changes.items()) if v is not None]
    return " ".join(assigned) or "the machine's own code paths"


def summary(environ: Mapping[str, str] | None = None) -> str:
    """The setting and the numeric variables in force, e.g. ``"DLCORE_NUMERICS=portable: MKL_CBWR=AVX2"``."""
    environ = os.environ if environ is None else environ
    in_force = {k: environ[k] for k in VARIABLES if k in environ}
    return f"{ENV_NAME}={environ.get(ENV_NAME) or 'unset'}: {describe(in_force)}"


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str | None]:
    """Apply ``DLCORE_NUMERICS`` (read from ``environ``) to ``environ``; return what it set.

    Unset or empty: nothing changes. ``environ`` defaults to ``os.environ``, which the kernels that
    nbval and the book build start inherit. Raises ValueError for an unknown setting.
    """
    environ = os.environ if environ is None else environ
    setting = environ.get(ENV_NAME, "")
    if not setting:
        return {}
    if setting not in SETTINGS:
        raise ValueError(f"{ENV_NAME} must be one of {SETTINGS}, got {setting!r}")
    changes = environment(setting, *native_machine())
    for name, value in changes.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return changes


def _apply_for_build(app, config) -> None:  # noqa: ANN001 (Sphinx's event signature)
    from sphinx.util import logging

    changes = apply()
    if changes:
        logging.getLogger(__name__).info(f"numerics: {summary()}")


def setup(app) -> dict:  # noqa: ANN001
    # config-inited comes before builder-inited, where fresh_outputs fingerprints these variables and
    # MyST-NB may start executing: the kernels see the setting, and the cache keys on it.
    app.connect("config-inited", _apply_for_build)
    return {
        "version": "1.0",
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }


if __name__ == "__main__":
    capability, threads = native_machine()
    print(f"ATen picks {capability}, torch runs {threads} threads")
    for name in SETTINGS:
        print(
            f"{ENV_NAME}={name:9s} {describe(environment(name, capability, threads))}"
        )
