"""Where the book's code runs: device choice, seeding, and an environment report.

Every chapter starts with::

    import dlcore
    device = dlcore.get_device()  # cuda > mps > cpu; DLCORE_DEVICE=cpu|cuda|mps overrides
    dlcore.seed_everything(0)
    dlcore.env_report()  # versions, device, CPU, BLAS: what the numbers were measured on
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import platform
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from dlcore._checks import check_bool, check_seed

__all__ = ["as_device", "get_device", "seed_everything", "env_report", "EnvReport"]

_DEVICE_ENV = "DLCORE_DEVICE"


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` inside the block: for imports that log noise on
    every machine (torch's "No CUDA runtime", torchao's pytree deprecation)."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return (
            bool(getattr(torch.backends, "mps", None))
            and torch.backends.mps.is_available()
        )
    return kind == "cpu"


def as_device(
    device: str | torch.device | None, *, name: str = "device"
) -> torch.device | None:
    """``device`` (a name such as ``"cuda:0"``, or a ``torch.device``) as a ``torch.device``.

    ``None`` stays ``None``. A CUDA or MPS device this machine does not have is an error here,
    naming the argument, rather than a torch traceback ("Found no NVIDIA driver") later, deep
    inside the call. Errors name the argument as ``name``, so every public function that takes
    a device reports its own argument.
    """
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"{name} must be a str, torch.device or None, got {device!r}"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{name} must name a device (cpu, cuda, cuda:0, mps), got {device!r}"
        ) from err
    if dev.type in ("cuda", "mps") and not _available(dev.type):
        raise ValueError(
            f"{name}={device!r} asks for {dev.type}, which this machine does not have"
        )
    if dev.type == "cuda" and dev.index is not None:
        if dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name}={device!r}: only {torch.cuda.device_count()} CUDA device(s) "
                "are visible"
            )
    return dev


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to compute on.

    Order: ``prefer`` if given, else the ``DLCORE_DEVICE`` environment variable, else the best
    available of cuda > mps > cpu. Asking for a device that is not present is an error rather than a
    silent fallback to CPU, so a GPU run can never quietly measure the CPU.
    """
    as_device(prefer, name="prefer")
    choice = (
        prefer
        if prefer is not None
        else os.environ.get(_DEVICE_ENV, "").strip() or None
    )
    if choice is None:
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    source = "prefer" if prefer is not None else _DEVICE_ENV
    device = as_device(choice, name=source)  # checks that this machine has it
    assert device is not None  # choice is set
    return device


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU ``torch.Generator`` seeded the same.

    ``deterministic=True`` also asks torch for deterministic kernels (slower on GPU; on CPU our code
    is already deterministic for a fixed thread count).
    """
    seed = check_seed("seed", seed)
    deterministic = check_bool("deterministic", deterministic)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class EnvReport:
    """What a measurement ran on. Shown at the top of every chapter so numbers carry their context.

    ``cpu`` (the model), ``cpu_capability`` (the instruction set ATen's kernels use) and ``blas``
    (the matrix library and its numerical mode) are what most often explain timings and last-bit
    differences between two machines running the same code.
    """

    python: str
    platform: str
    torch: str
    numpy: str
    device: str
    device_name: str
    threads: int
    cpu_count: int
    cpu: str = "unknown"
    cpu_capability: str = "unknown"
    blas: str = "unknown"
    extras: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        base = [
            ("python", self.python),
            ("platform", self.platform),
            ("torch", self.torch),
            ("numpy", self.numpy),
            ("device", f"{self.device} ({self.device_name})"),
            ("torch threads", str(self.threads)),
            ("cpu cores", str(self.cpu_count)),
            ("cpu", self.cpu),
            ("cpu capability", self.cpu_capability),
            ("blas", self.blas),
        ]
        return base + sorted(self.extras.items())

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows())

    def _repr_html_(self) -> str:
        # HTML, not markdown: the book renders markdown outputs as CommonMark, which has no tables.
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in self.rows()
        )
        return f"<table class='dlcore-env'><caption>environment</caption>{cells}</table>"


def _cpu_model() -> str:
    """The CPU's marketing name: /proc/cpuinfo on Linux, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            match = re.search(
                r"^(?:model name|Hardware|cpu model)\s*:\s*(.+)$", f.read(), re.M
            )
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_capability() -> str:
    """The SIMD level ATen dispatches to (``ATEN_CPU_CAPABILITY`` can lower it)."""
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return str(get()) if get is not None else "unknown"


def _blas() -> str:
    """torch's BLAS (and MKL's reproducibility mode, if set), then NumPy's."""
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    blas_info = re.search(r"BLAS_INFO=(\w+)", config)
    if mkl and torch.backends.mkl.is_available():
        torch_blas = f"MKL {mkl.group(1)}"
    else:
        torch_blas = blas_info.group(1) if blas_info else "unknown"
    if os.environ.get("MKL_CBWR"):
        torch_blas += f" (MKL_CBWR={os.environ['MKL_CBWR']})"
    try:  # NumPy >= 1.26 reports its build as a dict
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        numpy_blas = f"{info['name']} {info.get('version', '')}".strip()
    # older NumPy: no dict form
    except (
        TypeError,
        KeyError,
        ValueError,
        AttributeError,
    ):
        numpy_blas = "unknown"
    return f"torch: {torch_blas}; numpy: {numpy_blas}"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU"
    return _cpu_model()


def env_report(device: torch.device | str | None = None) -> EnvReport:
    """Versions, device, threads, CPU model, instruction set and BLAS, as an :class:`EnvReport`.

    Prints as a table in notebooks (HTML, since the book's Markdown has no tables).
    """
    dev = get_device(as_device(device))
    extras: dict[str, str] = {"dlcore": _dlcore_version()}
    for name in ("torchvision", "sklearn"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        extras[name] = getattr(module, "__version__", "?")
    if dev.type == "cuda":
        extras["cuda"] = str(torch.version.cuda)
    return EnvReport(
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        torch=torch.__version__,
        numpy=np.__version__,
        device=str(dev),
        device_name=_device_name(dev),
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count() or 1,
        cpu=_cpu_model(),
        cpu_capability=_cpu_capability(),
        blas=_blas(),
        extras=extras,
    )


def _dlcore_version() -> str:
    from dlcore import __version__

    return __version__
