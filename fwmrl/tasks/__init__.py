"""Supervised and language-modelling trainers on the memory cores (imports :mod:`fwmrl.memory`, not RL).

* :mod:`~fwmrl.tasks.retrieval` — associative retrieval (the 2017 gated-fast-weights task).
* :mod:`~fwmrl.tasks.babi` — bAbI v1.2 file loader and the catbAbI stream (QA and LM mode);
  :mod:`~fwmrl.tasks.babi_generator` writes bAbI-style task files.
* :mod:`~fwmrl.tasks.lm` — word-level language modelling on a ``train/valid/test.txt`` folder;
  :mod:`~fwmrl.tasks.corpus` writes a small grammar corpus in that layout.
* :mod:`~fwmrl.tasks.trainer` — the shared truncated-BPTT loop, checkpoints and evaluation.
"""

from fwmrl.tasks.streams import Stream, batchify, stream_metrics

__all__ = ["Stream", "batchify", "stream_metrics"]
