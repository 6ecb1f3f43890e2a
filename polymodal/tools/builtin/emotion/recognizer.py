"""Emotion in a voice, a face, or a whole video call: per window, per face, fused, over time.

- Voice: an audio-classification checkpoint (wav2vec2/HuBERT emotion models) on 16 kHz mono audio,
  one window of the recording at a time. A video's sound track counts as audio. Loaded with
  ``AutoFeatureExtractor`` (``AutoProcessor`` fails for wav2vec2 classifiers, which have no CTC
  vocabulary). A silent window (RMS under ``silence_rms``) says "no voice" instead of classifying noise.
- Faces: an image-classification checkpoint (facial-expression ViTs) on face *crops*. In a video,
  ``frames`` frames per window are sampled, faces are found (:mod:`polymodal.tools.builtin.emotion.faces`, OpenCV's
  Haar cascade), tracked by position (``face 1``, ``face 2``) and cropped; a frame without a face
  says so instead of classifying the room. A photo with no face found is classified whole (it may
  be a tight face crop already), with a note.
- Fusion per window: labels are aligned by name (``hap`` = ``happy``...), the faces' distributions
  are averaged, then a weighted average with the voice; or a trained
  :class:`~polymodal.tools.builtin.emotion.fusion_head.FusionHead` (concatenated embeddings -> linear classifier)
  when one is configured and both signals are there.
- Over time (:mod:`polymodal.tools.builtin.emotion.mood`): windows of ``window`` seconds, adjacent equal labels
  merged into a timeline per person/signal, and the changes told in words ("calm until 03:10, then
  angry"). The call is streamed (:mod:`polymodal.tools.builtin.emotion.call_windows`): memory holds a batch of
  windows' crops and sound, never the call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from polymodal.errors import AttachmentError, ConfigurationError, MediaLimitError, ToolError
from polymodal.media import Attachment, Modality
from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ModelTool, ToolOutput
from polymodal.tools.builtin.emotion._parts import (
    _Bundle,
    _distribution,
    _per_input,
    _pool,
    _Run,
    _span,
    _to,
    _track_names,
    _weighted,
)
from polymodal.tools.builtin.emotion.call_windows import (
    WHOLE_PICTURE,
    CallSource,
    FaceSettings,
    WindowInput,
    iter_windows,
)
from polymodal.tools.builtin.emotion.faces import FaceDetector, FaceTracker, HaarFaceDetector
from polymodal.tools.builtin.emotion.fusion_head import FusionHead
from polymodal.tools.builtin.emotion.mood import (
    Fusion,
    MoodWindow,
    WindowGrid,
    clock,
    mean_distribution,
    merge_windows,
)
from polymodal.tools.builtin.emotion.scores import (
    _MIN_VOICE,
    DEFAULT_AUDIO_MODEL,
    DEFAULT_FACE_MODEL,
    SAMPLE_RATE,
    EmotionArgs,
    EmotionScores,
)

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


class EmotionRecognizer(ModelTool):
    """Recognises emotion in a voice, faces, or both (a video call), per window and overall."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "emotion_recognizer"
    description: str = (
        "Recognise the emotion (happy, sad, angry, neutral...) expressed by a voice recording, a face "
        "photo, or a video or call recording (the faces in it and its sound track together), and how "
        "the mood changes over time. Returns the overall emotion with probabilities and a timeline. Use it "
        "for 'how does the speaker feel', 'is this person happy', 'how did the people in this call feel'."
    )
    args_schema: type[BaseModel] = EmotionArgs
    model: str = DEFAULT_AUDIO_MODEL
    """Audio-classification checkpoint (hub id or folder)."""
    face_model: str | None = DEFAULT_FACE_MODEL
    """Image-classification checkpoint for faces; None: voice only."""
    audio_weight: float = Field(default=0.5, ge=0.0)
    face_weight: float = Field(default=0.5, ge=0.0)
    window: float = Field(default=8.0, ge=0.5, le=600.0)
    """Seconds per window of the timeline (the last window takes the remainder)."""
    frames: int = Field(default=4, ge=1, le=64)
    """Frames sampled evenly from each window to look for faces."""
    detect_faces: bool = True
    """Classify face crops (needs the ``faces`` extra); False: whole frames and photos, as given."""
    face_detector: FaceDetector | None = None
    """Any object with ``detect(rgb) -> list[FaceBox]``; None: OpenCV's frontal-face Haar cascade."""
    face_margin: float = Field(default=0.2, ge=0.0, le=1.0)
    """Context kept around a face box, as a fraction of its size on each side."""
    max_faces: int = Field(default=4, ge=1)
    """Largest faces classified per frame (the rest are ignored)."""
    silence_rms: float = Field(default=0.003, ge=0.0)
    """A window's sound quieter than this (root mean square, full scale 1.0) is "no voice"."""
    max_duration: float = Field(default=7200.0, gt=0)
    """Longest input accepted, in seconds (a MediaLimitError past it)."""
    max_windows: int = Field(default=1000, ge=1)
    """Most windows one input may need (a MediaLimitError past it)."""
    head: str | None = None
    """Folder of a trained FusionHead (see FusionHead.save); used when both voice and face are present."""

    direct_answer: ClassVar[bool] = True
    _haar: HaarFaceDetector | None = PrivateAttr(default=None)

    def cache_key(self) -> str:
        return f"{super().cache_key()}|{self.face_model}|{self.head}"

    def load(self, device: str, dtype: Any) -> _Bundle:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        extractor = load_checked(self.name, self.model, lambda: AutoFeatureExtractor.from_pretrained(self.model))
        audio_model = AutoModelForAudioClassification.from_pretrained(self.model, dtype=dtype).to(device).eval()
        face_model = image_processor = None
        if self.face_model is not None:
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            face = self.face_model
            image_processor = load_checked(self.name, face, lambda: AutoImageProcessor.from_pretrained(face))
            face_model = AutoModelForImageClassification.from_pretrained(face, dtype=dtype).to(device).eval()
        head = FusionHead.load(self.head) if self.head is not None else None
        return _Bundle(audio_model, extractor, face_model, image_processor, head, device, dtype)

    # -- one input at a time, windows batched across inputs -------------------------------

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        """Stream each input's windows and classify them ``batch_size`` at a time, across inputs.

        Inputs are checked first (bad files and caps fail before any model loads). Each batch of
        windows goes through the micro-batcher when it is on, so concurrent calls share forwards.
        """
        runs = [self._start(item) for item in inputs]
        pending: list[tuple[_Run, WindowInput]] = []
        for run, window in self._all_windows(runs):
            pending.append((run, window))
            if len(pending) >= max(1, self.batch_size):
                self._classify(pending)
                pending = []
        if pending:
            self._classify(pending)
        results = [self._finish(run) for run in runs]
        return [ToolOutput(content=scores.text(), artifact=scores) for scores in results]

    def _run_windows(self, windows: list[WindowInput]) -> list[ToolOutput]:
        """One batch of windows through the model: shared with concurrent callers when micro-batching is on.

        The stream is not held as a batcher "caller": it submits batch after batch, and a batch
        should not wait for the next one of the same call.
        """
        call = self.model_call()
        if not self.coalesces():
            return self.run_prepared(windows, call)
        from polymodal.runtime.batching import batcher_for

        return batcher_for(self, call.host).submit(windows, call)

    def _all_windows(self, runs: list[_Run]) -> Iterator[tuple[_Run, WindowInput]]:
        for run in runs:
            for window in iter_windows(run.source, run.grid, self.frames, run.faces, run.state, rate=SAMPLE_RATE,
                                       max_seconds=self.max_duration, max_windows=self.max_windows,
                                       duration_hint="EmotionRecognizer(max_duration=...)",
                                       windows_hint="EmotionRecognizer(max_windows=...) or its window"):
                window.audio = self._voice(window.audio)
                yield run, window

    def _classify(self, pending: list[tuple[_Run, WindowInput]]) -> None:
        outputs = self._run_windows([window for _, window in pending])
        for (run, _), output in zip(pending, outputs, strict=True):
            run.windows.append(output.artifact)
        run, last = pending[-1]
        if run.source.duration:
            self.report_progress(f"{run.source.name}: mood up to {clock(last.end)} of {clock(run.source.duration)}",
                                 last.end / run.source.duration)

    def _voice(self, samples: np.ndarray | None) -> np.ndarray | None:
        """The window's sound, or None when it is too short or silent to be a voice."""
        if samples is None or samples.size < _MIN_VOICE:
            return None
        return samples if float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) >= self.silence_rms else None

    def _start(self, item: dict[str, Any]) -> _Run:
        """Check one input's media and caps, and say where its voice and faces come from."""
        audio_src: Attachment | None = item.get("audio")
        video: Attachment | None = item.get("video")
        image: Attachment | None = item.get("image")
        if audio_src is None and video is not None and video.has_audio:
            audio_src = video  # a video's sound track is the voice
        first = audio_src or video or image
        if first is None:  # the args schema forbids this; a direct execute() call skips the schema
            raise ToolError(self.name, "give at least one of 'audio', 'video' or 'image'")
        name = first.name  # errors name the file, not the conversation's id for it
        if video is not None and video.kind is not Modality.VIDEO:
            raise AttachmentError(video.name, f"is {video.kind.value}, not a video")
        notes = []
        if self.face_model is None:
            video_for_faces, picture = None, None
        else:
            video_for_faces, picture = video, image.image() if image is not None else None
        if audio_src is None and video_for_faces is None and picture is None:
            raise AttachmentError(name, "has no usable voice (no sound) and no face input for this recognizer")
        if video is not None and audio_src is None:
            notes.append("the video has no sound track: faces only")
        timed = [a.duration or 0.0 for a in (audio_src, video_for_faces) if a is not None]
        duration = max(timed) if timed else None
        grid = WindowGrid(window=self.window, duration=duration or None)
        self._check_caps(name, duration, grid)
        detector = self._detector() if (video_for_faces is not None or picture is not None) else None
        source = CallSource(name, audio=audio_src, video=video_for_faces, image=picture, duration=duration)
        return _Run(source, grid, FaceSettings(detector, self.face_margin, self.max_faces, FaceTracker()), notes=notes)

    def _check_caps(self, name: str, duration: float | None, grid: WindowGrid) -> None:
        if duration is not None and duration > self.max_duration:
            msg = (f"is {duration:.0f} s long, over the emotion recognizer's max_duration of {self.max_duration:g} s "
                   "(raise it with EmotionRecognizer(max_duration=...))")
            raise MediaLimitError(name, msg)
        if grid.planned > self.max_windows:
            msg = (f"needs {grid.planned} windows of {self.window:g} s, over the emotion recognizer's max_windows of "
                   f"{self.max_windows} (raise EmotionRecognizer(max_windows=...) or its window length)")
            raise MediaLimitError(name, msg)

    def _detector(self) -> FaceDetector | None:
        if not self.detect_faces:
            return None
        if self.face_detector is not None:
            return self.face_detector
        if self._haar is None:
            self._haar = HaarFaceDetector().load()  # a missing 'faces' extra fails here, before any model loads
        return self._haar

    # -- the ModelTool steps, on windows ----------------------------------------------------

    def encode(self, bundle: _Bundle, prepared: list[WindowInput]) -> dict[str, Any]:
        encoded: dict[str, Any] = {"audio": None, "face": None}
        voices = [p.audio for p in prepared if p.audio is not None]
        if voices:
            # Checkpoints trained without attention masks (wav2vec2-base and its emotion fine-tunes say
            # so with return_attention_mask=False) read zero padding as signal: run those unpadded, one
            # clip per forward, so a batch gives exactly what single calls give.
            groups = [voices] if bundle.feature_extractor.return_attention_mask else [[v] for v in voices]
            encoded["audio"] = [
                {k: _to(v, bundle) for k, v in bundle.feature_extractor(
                    group, sampling_rate=SAMPLE_RATE, padding=True, return_tensors="pt").items()}
                for group in groups
            ]
        crops = [crop for p in prepared for crop in p.crops]
        if crops and bundle.face_model is not None:
            pixels = bundle.image_processor(images=crops, return_tensors="pt")
            encoded["face"] = {k: _to(v, bundle) for k, v in pixels.items()}
        return encoded

    def forward(self, bundle: _Bundle, encoded: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if encoded["audio"] is not None:
            import torch

            probs, pooled = [], []
            for features in encoded["audio"]:
                result = bundle.audio_model(**features, output_hidden_states=True)
                probs.append(result.logits.float().softmax(-1))
                pooled.append(_pool(bundle.audio_model, result.hidden_states[-1], features.get("attention_mask")))
            out["audio"] = (torch.cat(probs), torch.cat(pooled))
        if encoded["face"] is not None:
            result = bundle.face_model(**encoded["face"], output_hidden_states=True)
            out["face"] = (result.logits.float().softmax(-1), _pool(bundle.face_model, result.hidden_states[-1], None))
        return out

    def decode(self, bundle: _Bundle, outputs: dict[str, Any], prepared: list[WindowInput]) -> list[ToolOutput]:
        return [ToolOutput(content="", artifact=self._fuse(bundle, item, voice, faces))
                for item, voice, faces in _per_input(outputs, prepared)]

    # -- fusion ----------------------------------------------------------------------------

    def _fuse(self, bundle: _Bundle, item: WindowInput, voice: Any, faces: dict[str, Any]) -> MoodWindow:
        window = MoodWindow(start=item.start, end=item.end, frames=item.frames)
        if voice is not None:
            window.voice = dict(_distribution(bundle.audio_model, voice[0]))
        for track, (probs, _) in faces.items():
            window.faces[track] = dict(_distribution(bundle.face_model, probs.mean(0)))
        face_dist = _weighted([(tuple(d.items()), 1.0) for d in window.faces.values()]) if window.faces else None
        if window.voice is not None and face_dist is not None and bundle.head is not None:
            import torch

            face_embedding = torch.stack([emb.mean(0) for _, emb in faces.values()]).mean(0)
            embedding = np.concatenate([voice[1].numpy(), face_embedding.numpy()])[None, :]
            probs = bundle.head.predict_proba(embedding)[0].tolist()
            fused, window.fusion = dict(zip(bundle.head.labels, probs, strict=True)), "head"
        elif window.voice is not None and face_dist is not None:
            fused = _weighted([(tuple(window.voice.items()), self.audio_weight),
                               (tuple(face_dist.items()), self.face_weight)])
            window.fusion = "average"
        elif window.voice is not None:
            fused, window.fusion = dict(window.voice), "audio"
        elif face_dist is not None:
            fused, window.fusion = face_dist, "face"
        else:
            return window
        window.fused = dict(sorted(fused.items(), key=lambda kv: -kv[1]))
        return window

    def _finish(self, run: _Run) -> EmotionScores:
        """The overall mood, the merged timeline and the notes of one input."""
        source, windows, notes = run.source, run.windows, run.notes
        pictures = source.video is not None or source.image is not None
        sampling = run.state.sampling
        if sampling.stopped_at is not None:
            notes.append(f"decoding stopped at {clock(sampling.stopped_at)} ({sampling.stop_reason}); "
                         "the pictures after it are not covered")
        tracks = _track_names(windows)
        frames = sum(w.frames for w in windows)
        if source.video is not None and self.detect_faces and not tracks:
            notes.append(f"no face found in any of the {frames} sampled frames "
                         "(the detector finds upright, frontal faces)")
        elif source.image is not None and self.detect_faces and tracks == [WHOLE_PICTURE]:
            notes.append("no face found in the photo; the whole photo was classified")
        elif source.image is not None and len(tracks) > 1:
            notes.append(f"{len(tracks)} faces in the photo; the overall label averages them")
        fused = [(w.fused, w.end - w.start) for w in windows if w.fused is not None]
        if not fused:
            got = "no face in the sampled frames" if pictures else "no face input"
            voice = "no sound track" if source.audio is None else "no voice (silent, or under 0.1 s of sound)"
            raise AttachmentError(source.name, f"has no usable voice and no face: {voice}, {got}")
        voices = [(w.voice, _span(w)) for w in windows if w.voice is not None]
        face_parts = [(_weighted([(tuple(d.items()), 1.0) for d in w.faces.values()]), _span(w))
                      for w in windows if w.faces]
        if source.audio is not None and not voices:
            notes.append("the sound has no voice (silent throughout)")
        kinds = {w.fusion for w in windows if w.fusion is not None}
        both = bool(voices) and bool(face_parts)
        fusion: Fusion = ("head" if "head" in kinds else "average") if both else ("audio" if voices else "face")
        probabilities = mean_distribution((dist, max(weight, 1e-3)) for dist, weight in fused)
        end = max((w.end for w in windows), default=0.0)
        return EmotionScores(
            label=next(iter(probabilities)), probabilities=probabilities,
            audio=mean_distribution(voices) if voices else None,
            face=mean_distribution(face_parts) if face_parts else None, frames=frames, fusion=fusion,
            timeline=merge_windows(windows, voice=source.audio is not None, faces=pictures), windows=windows,
            faces=tracks, window=None if source.audio is None and source.video is None else self.window,
            duration=end, notes=notes,
        )

    # -- training data for a FusionHead ------------------------------------------------------

    def embeddings(self, inputs: Sequence[dict[str, Any]]) -> np.ndarray:
        """Concatenated (voice, mean face) embeddings, one row per input: the features a FusionHead learns from.

        Every input needs both a voice and a face in its first window (``window`` seconds): training
        clips should be short, like the windows the head will see. Media arguments are Attachments
        (or paths).
        """
        runs = [self._start(self.resolve_inputs(item, None)) for item in inputs]
        firsts = [next(self._all_windows([run]))[1] for run in runs]
        if any(w.audio is None or not w.crops for w in firsts):
            msg = f"{self.name}: every input needs both a voice and a face to build embeddings"
            raise ConfigurationError(msg)
        bundle = self.bundle()
        import torch

        with torch.inference_mode():
            outputs = self.forward(bundle, self.encode(bundle, firsts))
        rows = []
        for _, voice, faces in _per_input(outputs, firsts):
            face = torch.stack([emb.mean(0) for _, emb in faces.values()]).mean(0)
            rows.append(np.concatenate([voice[1].numpy(), face.numpy()]))
        return np.stack(rows).astype(np.float32)
