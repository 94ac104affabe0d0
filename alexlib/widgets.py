"""Interactive extras for the chapters (ipywidgets). The book has no kernel, so every widget here
has a static twin in ``alexlib.figures`` that the chapter also shows.

Widgets are built with ``ipywidgets.interactive``: ``widget.children`` holds the controls, and
``widget.result`` the value returned for the current settings, so tests can drive them without
a browser.
"""

from __future__ import annotations

import torch

from alexlib.figures import lrn_settings
from alexlib.layers import local_response_norm


def lrn_explorer(maps: torch.Tensor, channel: int | None = None):
    """Sliders for local response normalisation's k, n, alpha and beta over maps ``(C, H, W)``.

    Moving a slider redraws :func:`alexlib.figures.lrn_settings` for that one setting (a map
    before and after, and b against a for every unit). ``widget.result`` is a dict with the
    ``setting``, the normalised maps ``output`` (C, H, W) and ``mean_ratio``, the mean of b / a
    over the positive units. The sliders start at the paper's constants (k=2, n=5, alpha=1e-4,
    beta=0.75) in the code's convention (alpha / n). Paper: section 3.3.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
        raise ValueError(
            "lrn_explorer expects one stack of maps (C, H, W), e.g. conv1 activations of one image "
            f"(take acts[0] of a batch); got "
            f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}"
        )
    maps = maps.detach().cpu().double()
    positive = maps > 0

    def show(k: float, size: int, alpha: float, beta: float, convention: str) -> dict:
        setting = dict(size=size, alpha=alpha, beta=beta, k=k, convention=convention)
        output = local_response_norm(maps.unsqueeze(0), **setting)[0]  # (C, H, W)
        mean_ratio = (
            float((output[positive] / maps[positive]).mean()) if positive.any() else float("nan")
        )
        display(lrn_settings(maps, [setting], channel))
        print(f"mean b / a over the positive units: {mean_ratio:.3f}")
        return {"setting": setting, "output": output, "mean_ratio": mean_ratio}

    style = {"description_width": "initial"}
    return widgets.interactive(
        show,
        k=widgets.FloatSlider(value=2.0, min=0.1, max=10.0, step=0.1, description="k", style=style),
        size=widgets.IntSlider(
            value=5, min=1, max=min(15, maps.shape[0]), description="n (maps)", style=style
        ),
        alpha=widgets.FloatLogSlider(
            value=1e-4,
            base=10,
            min=-7,
            max=-1,
            step=0.1,
            description="alpha",
            readout_format=".1e",
            style=style,
        ),
        beta=widgets.FloatSlider(
            value=0.75, min=0.0, max=2.0, step=0.05, description="beta", style=style
        ),
        convention=widgets.Dropdown(
            options=[("as printed: alpha", "paper"), ("code: alpha / n", "code")],
            value="code",
            description="convention",
            style=style,
        ),
    )
