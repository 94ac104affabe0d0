"""alexlib: the helper library of "AlexNet, executable".

Data flows one way through the modules, and each imports only from those to its left
(``tests/test_layout.py`` checks it):

    errors -> _io -> config -> data -> augment -> layers -> model -> fast -> engine -> evaluate
           -> train -> parallel -> experiments -> ledger -> figures -> widgets -> tools -> cli

``errors``: the one error type (:class:`~alexlib.errors.AlexlibError`); ``_io``: atomic writes,
provenance, the results folder; ``config``: the one registry of settings (experiment x scale);
``engine``: the one training loop and the one top-k; ``tools``: build tooling (the book job,
the benchmark), not library code. Chapters import what they need, e.g. ``from alexlib.data import
load``.
"""

__version__ = "0.1.0"
