"""benchmarks/compression.py says, on every int8 row, whether the CPU has the int8 dot-product
instructions its >= 2x target needs (an AVX2-only CPU does not: the row's NO is expected)."""

from __future__ import annotations

import torch

from benchmarks import compression

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
VNNI = "flags\t\t: fpu avx2 avx512f avx512_vnni amx_tile amx_int8\n"


def test_int8_hardware_reads_the_cpu_flags() -> None:
    assert compression.int8_hardware(AVX2_ONLY) == "none"
    assert compression.int8_hardware(VNNI) == "avx512_vnni amx_int8"
    assert compression.int8_hardware("no flags line here") == "unknown"
    here = compression.int8_hardware()
    assert here in ("none", "unknown") or set(here.split()) <= set(
        compression.INT8_FLAGS
    )


def test_every_int8_row_states_the_hardware_behind_its_target() -> None:
    rows = compression._int8_cases(torch.rand(4, 1, 28, 28))
    cases = [r for r in rows if isinstance(r, compression.Case)]
    assert cases, "no int8 row was built"
    for case in cases:
        assert "int8 dot-product instructions: " in case.reference_name
    assert "Not met on the book's AVX2 machine" in compression.__doc__
