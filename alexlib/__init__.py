"""alexlib: the helper library of "AlexNet, executable".

Data flows one way through the modules, and each imports only from those to its left
(``tests/test_layout.py`` checks it):

    errors -> _io -> config -> data -> augment -> layers -> model -> fast -> bench_results
           -> engine -> evaluate -> train -> parallel -> experiments -> ledger -> figures
           -> widgets -> cli

``errors``: the one error type (:class:`~alexlib.errors.AlexlibError`); ``_io``: atomic writes,
provenance, the results folder; ``config``: the one registry of settings (experiment x scale);
``bench_results``: the stored training-speed runs, read back for chapter 8; ``engine``: the one
training loop and the one top-k. Chapters import what they need, e.g. ``from alexlib.data import
load``. The project's own tooling (the book build, the GPU sitting, the benchmark driver) is not
part of this package: it lives in the repository's ``tools/`` folder.
"""

__version__ = "0.1.0"
