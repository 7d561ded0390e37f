"""What a lab's first cell needs beside its imports: quiet logs and tidy plots.

    from moss_lab.notebook import quiet_notebook
    quiet_notebook()     # no progress bars or deprecation notes between the lessons
"""
from __future__ import annotations

import warnings


def quiet_notebook() -> None:
    """Silence what only distracts in a lab (tqdm's ipywidgets note, transformers' and
    trl's deprecation notes and download bars) and lay plots out tightly."""
    import matplotlib.pyplot as plt
    import transformers

    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, no ipywidgets
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers 5 / trl notes
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    plt.rcParams["figure.constrained_layout.use"] = True
