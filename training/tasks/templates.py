"""Prompt templates with paraphrases, one list per task family.

UIO-2 wrote several hand-made prompts per task and sampled one per example, so the
model learns the task rather than one sentence. Placeholders are ``str.format`` keys.
"""

from __future__ import annotations

import numpy as np

TEMPLATES: dict[str, list[str]] = {
    "action": [
        "{instruction}",
        "Robot task: {instruction}. Predict the next actions.",
        "What should the robot do next to {instruction_lc}?",
        "Instruction: {instruction}. Output the action chunk.",
        "Control the arm so that it will {instruction_lc}.",
    ],
    "action_speech": [
        "Follow the spoken instruction.",
        "Listen to the command and predict the next actions.",
        "Do what the audio says.",
        "Carry out the instruction in the recording.",
    ],
    "caption": [
        "Describe the image.",
        "What do you see on the table?",
        "Write a short caption for this scene.",
        "Caption the picture.",
        "What is in this image?",
    ],
    "vqa": ["{question}", "Question: {question} Answer briefly.", "{question} Answer in a few words."],
    "refexp": [
        "Locate the {name}.",
        "Where is the {name}? Give its bounding box.",
        "Find the {name} in the image.",
        "Box the {name}.",
    ],
    "pointing": [
        "Point to the {name}.",
        "Where exactly is the {name}? Give a point.",
        "Click on the {name}.",
    ],
    "pointing_speech": [
        "Point to the object you hear.",
        "Where is the thing named in the audio? Give a point.",
        "Click on what the speaker names.",
    ],
    "boxes3d": [
        "Give the 3D bounding box of the {name}.",
        "Where is the {name} in 3D?",
        "Estimate the cuboid of the {name}.",
    ],
    "camera_pose": [
        "Where is the camera?",
        "Estimate the camera pose.",
        "From where was this picture taken?",
    ],
    "detection": [
        "Detect all objects.",
        "List every object with its bounding box.",
        "Find the objects on the table.",
    ],
    "asr": [
        "What does the speaker say?",
        "Transcribe the audio.",
        "Write down the spoken instruction.",
    ],
    "tts": ["Say: {text}", "Read this aloud: {text}", "Speak the instruction: {text}"],
    "activity": [
        "What is the robot doing?",
        "Describe what the robot is doing in the video.",
        "What task is the robot performing?",
    ],
    "depth": ["What is the depth map of the image?", "Estimate depth.", "Render the depth of this scene."],
    "segmentation": [
        "Segment the image.",
        "Give the segmentation map of the scene.",
        "Colour every object by its identity.",
    ],
    "next_frame": [
        "What will the scene look like next?",
        "Predict the next camera frame.",
        "Generate the frame that follows.",
    ],
    "goal_image": [
        "Show the scene after the robot completes: {instruction}",
        "Generate the goal image for: {instruction}",
        "What will the table look like once the robot has {instruction_lc}?",
    ],
}


def prompt(family: str, rng: np.random.Generator, **fields: str) -> str:
    """One paraphrase of ``family``'s prompt, drawn with ``rng``, filled with ``fields``."""
    if family not in TEMPLATES:
        raise KeyError(f"no prompt templates for task family {family!r}; known: {sorted(TEMPLATES)}")
    if "instruction" in fields:
        fields["instruction"] = fields["instruction"].strip().rstrip(".")
        fields.setdefault("instruction_lc", fields["instruction"].lower())
    options = TEMPLATES[family]
    return options[int(rng.integers(len(options)))].format(**fields)
