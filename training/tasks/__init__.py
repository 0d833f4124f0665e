"""Task families: Examples (model.example) made from episodes and the simulator's annotations.

``FAMILIES`` maps a family name (the keys of ``data.mixture`` in the config) to its
TaskFamily; ``select(mixture, capabilities)`` keeps the families this run can make
and says why each other one was dropped.
"""

from __future__ import annotations

from training.tasks import action, activity, caption, dense, generation, geometry3d, grounding, speech, vqa
from training.tasks.base import TaskContext, TaskFamily

FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for module in (action, caption, vqa, grounding, geometry3d, speech, activity, dense, generation)
    for f in module.FAMILIES
}

_WHY = {
    "annotations": "the episodes carry no simulator annotations (objects, camera)",
    "speech": "no speech: the episodes have none and no synthesiser is available",
    "image_tokenizer": "the model has no image tokenizer (VQ-GAN) for image targets",
    "audio_tokenizer": "the model has no audio tokenizer for audio targets",
    "depth": "the episodes have no depth maps",
    "segmentation": "the episodes have no segmentation maps",
}


def select(mixture: dict[str, float], capabilities: set[str]) -> tuple[dict[str, float], dict[str, str]]:
    """(usable family -> weight, dropped family -> reason). Unknown names are an error, not a typo ignored."""
    unknown = sorted(set(mixture) - set(FAMILIES))
    if unknown:
        raise ValueError(f"data.mixture: unknown task famil(ies) {unknown}; known: {sorted(FAMILIES)}")
    kept, dropped = {}, {}
    for name, weight in mixture.items():
        if weight < 0:
            raise ValueError(f"data.mixture.{name}: weight must be >= 0, got {weight}")
        if weight == 0:
            continue
        missing = sorted(FAMILIES[name].needs - capabilities)
        if missing:
            dropped[name] = "; ".join(_WHY.get(m, m) for m in missing)
        else:
            kept[name] = float(weight)
    return kept, dropped


__all__ = ["FAMILIES", "TaskContext", "TaskFamily", "select"]
