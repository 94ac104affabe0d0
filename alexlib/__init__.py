"""alexlib: the helper library of "AlexNet, executable".

Data flows one way through the modules, and each imports only from those to its left
(``tests/test_layout.py`` checks it):

    recipe -> errors -> _io -> config -> data -> augment -> layers -> model -> fast -> bench_results
           -> engine -> evaluate -> train -> parallel -> experiments -> ledger -> figures
           -> widgets -> cli

``recipe``: the paper's numbers (layer sizes, LRN constants, init, SGD, schedule, image
sizes), each written once with its section; ``errors``: the one error type
(:class:`~alexlib.errors.AlexlibError`); ``_io``: atomic writes, provenance, the results folder;
``config``: what each scale changes (every preset, by experiment and scale);
``bench_results``: the stored training-speed runs, read back for chapter 8; ``engine``: the
training step, the epoch and the one top-k; ``train``: :class:`~alexlib.train.Trainer`, the one
epoch driver, and its uses ``fit`` and ``train_run``. Chapters import what they need, e.g.
``from alexlib.data import load``. The project's own tooling (the book build, the GPU sitting,
the benchmark driver) is not part of this package: it lives in the repository's ``tools/``
folder.
"""

__version__ = "0.1.0"
