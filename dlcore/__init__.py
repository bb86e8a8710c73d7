"""dlcore — the tested library behind *Investment and Return: deep-learning foundations, measured*.

Import what a chapter needs from its module (``dlcore.data``, ``dlcore.train``, ``dlcore.measure``, …);
the top level holds only the runtime helpers every chapter calls first.
"""

__version__ = "0.2.0"

from dlcore.runtime import env_report, get_device, seed_everything

__all__ = ["__version__", "get_device", "seed_everything", "env_report"]
