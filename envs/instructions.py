"""Paraphrase templates: one instruction per episode, drawn from several phrasings of the same goal.

Fields: ``{obj}`` / ``{a}`` / ``{b}`` an object ("red cube"), ``{place}`` a pad, ``{container}`` a bin,
``{button}`` a button. Place and container words vary too ("blue pad" / "blue mat").
"""

from __future__ import annotations

import numpy as np

TEMPLATES: dict[str, list[str]] = {
    "reach": [
        "reach the {obj}",
        "move the gripper to the {obj}",
        "touch the {obj}",
        "go to the {obj}",
        "put your hand on the {obj}",
        "reach for the {obj}",
    ],
    "push": [
        "push the {obj} to the {place}",
        "slide the {obj} onto the {place}",
        "push the {obj} onto the {place}",
        "move the {obj} to the {place} by pushing it",
        "nudge the {obj} over to the {place}",
    ],
    "pick_place": [
        "pick up the {obj} and place it in the {container}",
        "put the {obj} in the {container}",
        "place the {obj} into the {container}",
        "move the {obj} into the {container}",
        "pick the {obj} and drop it in the {container}",
    ],
    "stack": [
        "stack the {a} on the {b}",
        "put the {a} on top of the {b}",
        "place the {a} onto the {b}",
        "pick up the {a} and stack it on the {b}",
    ],
    "drawer_open": [
        "open the drawer",
        "pull the drawer open",
        "pull out the drawer",
        "slide the drawer open",
    ],
    "drawer_close": [
        "close the drawer",
        "push the drawer shut",
        "shut the drawer",
        "slide the drawer closed",
    ],
    "button": ["press the {button}", "push the {button}", "hit the {button}", "press down on the {button}"],
}

PLACE_WORDS = ("pad", "mat", "square")
CONTAINER_WORDS = ("bin", "box", "tray")

# Every character an instruction may contain (the observation space's Text charset).
CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'-!?"
MAX_LENGTH = 200


def instruction(kind: str, rng: np.random.Generator, **names: str) -> str:
    """Fill a random template of ``kind``; ``place``/``container`` are colours, given a random noun here."""
    if kind not in TEMPLATES:
        raise ValueError(f"unknown instruction kind {kind!r}; expected one of {sorted(TEMPLATES)}")
    fields = dict(names)
    if "place" in fields:
        fields["place"] = f"{fields['place']} {PLACE_WORDS[rng.integers(len(PLACE_WORDS))]}"
    if "container" in fields:
        fields["container"] = f"{fields['container']} {CONTAINER_WORDS[rng.integers(len(CONTAINER_WORDS))]}"
    templates = TEMPLATES[kind]
    return templates[rng.integers(len(templates))].format(**fields)
