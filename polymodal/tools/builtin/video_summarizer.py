"""Video summarizer: keyframes captioned in batches + the sound track transcribed -> a timeline -> a summary.

It composes the two reference tools instead of re-implementing them: it holds a
:class:`~polymodal.tools.builtin.captioner.Captioner` and a :class:`~polymodal.tools.builtin.transcriber.Transcriber`
and calls their ``execute_batch``, so their models come from the shared cache (a standalone
captioner in the same agent loads nothing twice).

The video streams through :func:`~polymodal.tools.builtin.keyframes.iter_keyframes`; keyframes wait only
until a caption batch is full, so memory holds one batch of images, never the video. The
timeline merges captions and speech by time: ``[00:00:12] a man at a desk | speech: hello``.
With an LLM (the agent lends its own, see ``uses_llm``) the timeline is summarized map-reduce:
cut into chunks that fit ``chunk_chars``, one summary per chunk, then a summary of the summaries.
Without one, an extractive summary (distinct captions + the transcript) stands in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from polymodal.errors import AttachmentError, ConfigurationError, MediaLimitError
from polymodal.media import Attachment, Modality
from polymodal.prompts import render_prompt
from polymodal.tools.base import Tool, ToolOutput, VideoRef, current_context
from polymodal.tools.builtin.captioner import Captioner
from polymodal.tools.builtin.keyframes import Keyframe, KeyframeSettings, Sampling, hms, iter_keyframes
from polymodal.tools.builtin.transcriber import NO_SPEECH, Transcriber, Transcript

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

_MAX_REDUCE_ROUNDS = 6
_EXTRACT_SCENES = 12
_EXTRACT_SPEECH_CHARS = 1200


class VideoSummarizerArgs(BaseModel):
    """Arguments of the video summarizer."""

    model_config = ConfigDict(extra="forbid")

    video: VideoRef
    focus: str | None = Field(
        default=None, description="what to look for, e.g. 'what does the speaker say about pricing?'"
    )


class TimelineSegment(BaseModel):
    """From one keyframe to the next: what the frame shows and what is said meanwhile."""

    start: float
    end: float
    caption: str = ""
    speech: str = ""

    def line(self) -> str:
        """``[00:00:12] caption | speech: words``."""
        text = f"[{hms(self.start)}] {self.caption or '(no caption)'}"
        return f"{text} | speech: {self.speech}" if self.speech else text


class Timeline(BaseModel):
    """The summarizer's artifact: the video's segments in time order, and its summary."""

    video: str
    """The file name."""
    duration: float
    has_audio: bool
    segments: list[TimelineSegment] = Field(default_factory=list)
    transcript: str = ""
    """The whole transcript ("" without a sound track)."""
    summary: str = ""
    summary_mode: Literal["llm", "extractive"] = "extractive"
    focus: str | None = None
    frames_scanned: int = 0
    stopped_at: float | None = None
    """Seconds where decoding stopped early (a truncated or damaged file); None when it did not."""
    notes: list[str] = Field(default_factory=list)
    """What could not be used, said plainly (no sound, decoding stopped, LLM failed...)."""

    def lines(self) -> list[str]:
        """One line per segment."""
        return [segment.line() for segment in self.segments]

    def header(self) -> str:
        """``clip.mp4: 00:00:07 long, 3 keyframes, with sound`` and the notes."""
        sound = "with sound" if self.has_audio else "no sound"
        head = f"{self.video}: {hms(self.duration)} long, {len(self.segments)} keyframes, {sound}"
        return "\n".join([head, *(f"Note: {note}" for note in self.notes)])

    def text(self) -> str:
        """The summary, then the timeline: what the tool returns as its content."""
        return f"Summary: {self.summary}\n\nTimeline of {self.header()}\n" + "\n".join(self.lines())


class VideoSummarizer(Tool):
    """Summarizes a video from captioned keyframes and its transcribed sound track."""

    name: str = "video_summarizer"
    description: str = (
        "Summarize a video: keyframes at scene changes are captioned, the sound track is transcribed, and "
        "both are merged into a timestamped timeline with a summary. Use it for 'summarize this video', "
        "'what happens in this clip'. For only what is said use transcriber; for one moment ('what happens "
        "at 0:42') use frame_grabber, then captioner or visual_qa on its image."
    )
    args_schema: type[BaseModel] = VideoSummarizerArgs

    captioner: Captioner = Field(default_factory=Captioner)
    """Captions keyframes (its model is shared with a standalone captioner through the cache)."""
    transcriber: Transcriber = Field(default_factory=Transcriber)
    """Transcribes the sound track with timestamps."""
    llm: BaseChatModel | None = None
    """Writes the summary; an Agent lends its own when this is None. None: extractive summary."""
    max_duration: float = Field(default=3600.0, gt=0)
    """Longest video accepted, in seconds (a MediaLimitError past it)."""
    max_keyframes: int = Field(default=64, ge=1)
    """Most keyframes captioned; more scene changes than this is a MediaLimitError."""
    scene_threshold: float = Field(default=0.12, gt=0, le=1)
    """Mean pixel difference (0..1) to the last keyframe that counts as a new scene."""
    min_interval: float = Field(default=1.0, ge=0)
    """Seconds between keyframes at least."""
    max_interval: float = Field(default=30.0, gt=0)
    """Seconds after which a frame is kept even if the picture did not change."""
    caption_batch: int = Field(default=8, ge=1)
    """Keyframes captioned per captioner call (and the most keyframe images held at once)."""
    chunk_chars: int = Field(default=6000, ge=500)
    """The most characters one summary prompt may have; longer timelines are map-reduced."""

    uses_llm: ClassVar[bool] = True
    """Tells the Agent to lend this tool its LLM when ``llm`` is None."""
    output_modality: ClassVar[Modality] = Modality.TEXT
    direct_answer: ClassVar[bool] = True

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        outputs = []
        for item in inputs:  # one video at a time: each is batched inside (keyframes, transcript)
            timeline = self.summarize(item["video"], item.get("focus"))
            outputs.append(ToolOutput(content=timeline.text(), artifact=timeline))
        return outputs

    def summarize(self, video: Attachment, focus: str | None = None) -> Timeline:
        """The timeline of ``video`` with its summary.

        Raises:
            MediaLimitError: longer than ``max_duration`` or more keyframes than ``max_keyframes``.
            AttachmentError: not a video, no video stream, or no frame decodes.
        """
        if video.kind is not Modality.VIDEO:
            raise AttachmentError(video.name, f"is {video.kind.value}, not a video")
        if video.duration is not None and video.duration > self.max_duration:
            msg = (f"is {video.duration:.0f} s long, over the video summarizer's max_duration of "
                   f"{self.max_duration:g} s (raise it with VideoSummarizer(max_duration=...))")
            raise MediaLimitError(video.name, msg)
        sampling = Sampling()
        captions = self._caption_keyframes(video, sampling)
        transcript, notes = self._transcribe(video)
        duration = max(sampling.duration, captions[-1][0]) if captions else sampling.duration
        if sampling.stopped_at is not None:
            notes.insert(0, f"decoding stopped at {hms(sampling.stopped_at)} ({sampling.stop_reason}); "
                            "the rest of the video is not covered")
        else:
            duration = max(duration, video.duration or 0.0)
        timeline = Timeline(
            video=video.name, duration=duration, has_audio=bool(video.has_audio),
            segments=_segments(captions, transcript, duration), focus=focus,
            transcript="" if transcript is None else transcript.text,
            frames_scanned=sampling.frames_scanned, stopped_at=sampling.stopped_at, notes=notes,
        )
        timeline.summary, timeline.summary_mode = self.write_summary(timeline)
        return timeline

    # -- keyframes and captions ---------------------------------------------------------

    def _caption_keyframes(self, video: Attachment, sampling: Sampling) -> list[tuple[float, str]]:
        settings = KeyframeSettings(
            threshold=self.scene_threshold, min_interval=self.min_interval, max_interval=self.max_interval,
            max_keyframes=self.max_keyframes,
        )
        captions: list[tuple[float, str]] = []
        pending: list[Keyframe] = []
        for keyframe in iter_keyframes(video, settings, sampling, max_seconds=self.max_duration,
                                       limit_hint="VideoSummarizer(max_keyframes=...)",
                                       duration_hint="VideoSummarizer(max_duration=...)"):
            pending.append(keyframe)
            _progress(f"scanned {sampling.frames_scanned} frames, {len(captions) + len(pending)} keyframes",
                      keyframe.time / video.duration if video.duration else None)
            if len(pending) >= self.caption_batch:
                captions.extend(self._caption(video, pending))
                pending = []
        if pending:
            captions.extend(self._caption(video, pending))
        return captions

    def _caption(self, video: Attachment, keyframes: list[Keyframe]) -> list[tuple[float, str]]:
        images = [Attachment.from_image(k.image, name=f"{video.name}@{hms(k.time)}.png") for k in keyframes]
        outputs = self.captioner.execute_batch([{"image": image} for image in images])
        _progress(f"captioned {len(keyframes)} keyframes up to {hms(keyframes[-1].time)}", None)
        return [(k.time, out.content) for k, out in zip(keyframes, outputs, strict=True)]

    def _transcribe(self, video: Attachment) -> tuple[Transcript | None, list[str]]:
        if not video.has_audio:
            return None, ["the video has no sound track"]
        try:
            transcript = self.transcriber.execute_batch([{"audio": video}])[0].artifact
        except MediaLimitError:
            raise  # over a cap is the user's setting to change, not a damaged file
        except AttachmentError as exc:  # a damaged sound track must not lose the pictures
            return None, [f"the sound track could not be decoded ({exc.problem})"]
        _progress("transcribed the sound track", None)
        notes = ["the sound track has no speech"] if transcript.text == NO_SPEECH else []
        return transcript, notes

    # -- summary ------------------------------------------------------------------------

    def write_summary(self, timeline: Timeline) -> tuple[str, Literal["llm", "extractive"]]:
        """The summary of a finished timeline: map-reduced by the LLM, or extractive without one.

        An LLM failure falls back to the extractive summary and adds a note (the timeline is
        still worth returning); a ``chunk_chars`` too small for the prompt is a ConfigurationError.
        """
        if self.llm is None:
            return extractive_summary(timeline), "extractive"
        try:
            return self._map_reduce(timeline), "llm"
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - the timeline is still worth returning
            timeline.notes.append(f"the LLM summary failed ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
            return extractive_summary(timeline), "extractive"

    def _map_reduce(self, timeline: Timeline) -> str:
        header, focus = timeline.header(), _focus_rule(timeline.focus)
        room = self.chunk_chars - len(render_prompt("video_map", focus=focus, header=header, part="part 99 of 99 "
                                                    "(00:00:00 to 00:00:00)", timeline=""))
        if room < 200:
            msg = f"video_summarizer: chunk_chars={self.chunk_chars} leaves no room for the timeline; raise it"
            raise ConfigurationError(msg)
        chunks = _pack([_fence(line, "timeline") for line in timeline.lines()] or ["(no keyframes)"], room)
        partials = []
        for i, chunk in enumerate(chunks, 1):
            span = f"{chunk[0][1:9]} to {chunk[-1][1:9]}" if chunk[0].startswith("[") else "all"
            part = "the whole video" if len(chunks) == 1 else f"part {i} of {len(chunks)} ({span})"
            partials.append(self._ask(render_prompt("video_map", focus=focus, header=header, part=part,
                                                    timeline="\n".join(chunk))))
        if len(partials) == 1:
            return partials[0]
        return self._reduce(partials, header, focus)

    def _reduce(self, partials: list[str], header: str, focus: str) -> str:
        room = self.chunk_chars - len(render_prompt("video_reduce", focus=focus, header=header, summaries=""))
        for _ in range(_MAX_REDUCE_ROUNDS):
            # each partial gets at most half the room, so every group holds two or more: rounds halve the count
            items = [f"Part {i}: {_fence(text, 'summaries')}"[: room // 2 - 2] for i, text in enumerate(partials, 1)]
            groups = _pack(items, room)
            partials = [self._ask(render_prompt("video_reduce", focus=focus, header=header,
                                                summaries="\n\n".join(group))) for group in groups]
            if len(partials) == 1:
                return partials[0]
        return " ".join(partials)

    def _ask(self, prompt: str) -> str:
        assert self.llm is not None
        message = self.llm.invoke([HumanMessage(content=prompt)])
        text = message.content if isinstance(message.content, str) else str(message.content)
        return " ".join(text.split())


def _progress(message: str, fraction: float | None) -> None:
    ctx = current_context()
    if ctx is not None and ctx.progress is not None:
        ctx.progress(message, None if fraction is None else min(1.0, max(0.0, fraction)))


def _segments(captions: list[tuple[float, str]], transcript: Transcript | None, duration: float
              ) -> list[TimelineSegment]:
    """One segment per keyframe, up to the next; each speech segment joins the keyframe it starts in."""
    segments = [
        TimelineSegment(start=t, end=max(t, captions[i + 1][0] if i + 1 < len(captions) else duration), caption=c)
        for i, (t, c) in enumerate(captions)
    ]
    if transcript is None or not segments or transcript.text == NO_SPEECH:
        return segments
    speech: list[list[str]] = [[] for _ in segments]
    spans = transcript.segments or []
    if not spans:  # a transcript without timestamps belongs to the start
        speech[0].append(transcript.text)
    for span in spans:
        index = max([i for i, s in enumerate(segments) if s.start <= span.start + 1e-6] or [0])
        speech[index].append(span.text)
    for segment, words in zip(segments, speech, strict=True):
        segment.speech = " ".join(words)
    return segments


def extractive_summary(timeline: Timeline) -> str:
    """The summary without an LLM: the distinct scenes in order, the speech, and what is missing."""
    scenes: list[str] = []
    for segment in timeline.segments:
        if segment.caption and (not scenes or not scenes[-1].endswith(f"{segment.caption}")):
            scenes.append(f"[{hms(segment.start)}] {segment.caption}")
    parts = [f"A {hms(timeline.duration)} video with {len(timeline.segments)} keyframes."]
    if scenes:
        more = f" (and {len(scenes) - _EXTRACT_SCENES} more)" if len(scenes) > _EXTRACT_SCENES else ""
        parts.append("It shows: " + "; ".join(scenes[:_EXTRACT_SCENES]) + more + ".")
    if not timeline.has_audio:
        parts.append("The video has no sound.")
    elif timeline.transcript and timeline.transcript != NO_SPEECH:
        speech = timeline.transcript
        cut = "…" if len(speech) > _EXTRACT_SPEECH_CHARS else ""
        parts.append(f"Speech: {speech[:_EXTRACT_SPEECH_CHARS]}{cut}")
    else:
        parts.append("Nothing is said (the sound track has no speech)." if timeline.transcript else
                     "The sound track could not be used.")
    if timeline.focus:
        parts.append(_focus_matches(timeline))
    if timeline.stopped_at is not None:
        parts.append(f"Decoding stopped at {hms(timeline.stopped_at)}; later parts of the video are missing.")
    return " ".join(parts)


def _focus_matches(timeline: Timeline) -> str:
    words = {w for w in re.findall(r"\w+", (timeline.focus or "").lower()) if len(w) > 3}
    hits = [line for line in timeline.lines() if words & set(re.findall(r"\w+", line.lower()))]
    if not hits:
        return f"Nothing in the captions or speech mentions: {timeline.focus}."
    return f"About '{timeline.focus}': " + " ".join(hits[:5])


def _focus_rule(focus: str | None) -> str:
    if not focus:
        return ""
    clean = " ".join(focus.split())[:300]
    return (f"- The user wants to know: {clean!r}. Say what the timeline shows about it, or say plainly that "
            "it does not show it.\n")


def _fence(text: str, tag: str) -> str:
    """Data text that cannot close (or open) the fence it is quoted in."""
    return text.replace(f"</{tag}", f"<\\/{tag}").replace(f"<{tag}", f"<\\{tag}")


def _pack(items: list[str], room: int) -> list[list[str]]:
    """Greedy groups of consecutive items whose joined length fits ``room`` (an item too long is cut)."""
    groups: list[list[str]] = []
    size = 0
    for item in items:
        item = item if len(item) <= room else item[: room - 1] + "…"
        if groups and size + 2 + len(item) <= room:
            groups[-1].append(item)
            size += 2 + len(item)
        else:
            groups.append([item])
            size = len(item)
    return groups
