"""Build tooling, not the library a chapter teaches with: the book's main job (:mod:`.book`:
execute every chapter, build the HTML book, check it in Chromium) and the training-speed benchmark
(:mod:`.bench`). Both are reached through ``python -m alexlib book`` and ``python -m alexlib
bench``."""
