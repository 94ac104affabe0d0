"""alexlib: the helper library of "AlexNet, executable".

Data flows one way through the modules, and each imports only from those to its left:

    config -> data -> augment -> layers -> model -> train -> evaluate -> figures -> widgets -> cli

Chapters import what they need, e.g. ``from alexlib.data import load``.
"""

__version__ = "0.1.0"
