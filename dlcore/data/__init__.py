"""Data for the book: dlcore/data.py becomes this package (the next commit splits it by job)."""

from dlcore.data.mnist import *  # noqa: F403
from dlcore.data.mnist import __all__  # noqa: F401
