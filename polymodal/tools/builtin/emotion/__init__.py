"""Emotion recognition: one tool (:class:`EmotionRecognizer`) and the parts it is built from.

- ``recognizer``: the tool itself, voice and face classifiers and their fused scores;
- ``scores``: the label set, the tool's arguments and its output value (``_parts``: internals);
- ``mood``: windows over time and the mood timeline of a call;
- ``faces``: face detection, tracking and cropping;
- ``call_windows``: cutting a call (video, audio, photos) into the windows the models classify;
- ``fusion_head``: the optional trained head that fuses voice and face scores.
"""

from __future__ import annotations

from polymodal.tools.builtin.emotion.recognizer import EmotionRecognizer
from polymodal.tools.builtin.emotion.scores import EmotionArgs, EmotionScores, canonical_emotion

__all__ = ["EmotionArgs", "EmotionRecognizer", "EmotionScores", "canonical_emotion"]
