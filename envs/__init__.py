"""Gymnasium environments on MuJoCo: our instruction-following tabletop suite and benchmark adapters.

``import envs`` registers the suite (``envs.SUITE``), ``uio2/Tabletop-v0`` (a task drawn per episode)
and the Meta-World / Fetch adapters (``uio2/MetaWorld-<task>-v0``, ``uio2/Fetch<Task>-v0``, created lazily:
their packages are imported only when such an env is made). ``envs.make_benchmark`` builds any of them.
"""

from envs.registry import SUITE, TABLETOP, make, make_benchmark, register_all

register_all()

__all__ = ["SUITE", "TABLETOP", "make", "make_benchmark"]
