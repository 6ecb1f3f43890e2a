"""The Attachment value: one validated media file, decoded lazily and cached."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import os
import threading
import uuid
import wave
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator

from polymodal.errors import AttachmentError
from polymodal.media._files import (
    _byte_cap,
    _check_file,
    _hash_stream,
    _open_regular,
    _reread,
    _resolve_inside,
    _settled,
    _stamp_of,
)
from polymodal.media._kinds import (
    _AV_DEMUXERS,
    _HEAD,
    DEFAULT_LIMITS,
    MediaLimits,
    Modality,
    _decoding,
    _safe_name,
    _short,
)
from polymodal.media._probing import _PROBED, _duration_cap, _open_image, _probe, _Stamp, _to_rgb, _upright
from polymodal.media._sources import _block_bytes

__all__: list[str] = []


class _Caches:
    """Decoded content shared by an attachment and its with_id copies; the lock avoids double decodes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.image: Image.Image | None = None
        self.audio: dict[int, np.ndarray] = {}
        self.stamp: _Stamp | None = None  # the checked file's identity, when it can be trusted (see _open)

    def __eq__(self, other: object) -> bool:  # caches are not identity: equal bytes, equal attachments
        return isinstance(other, _Caches)

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:  # locks do not pickle; caches are cheap to rebuild
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


class Attachment(BaseModel):
    """One validated media file. Build it with the ``from_*`` classmethods or ``coerce``.

    Constructing it directly (or from JSON) skips validation and the allowed-roots check, so only
    do that with data polymodal itself serialised. JSON never carries the bytes: a deserialised
    attachment reads them back from ``path``, checked against ``sha256``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    id: str | None = None
    """Handle the planner uses ("image_1"); set by the conversation with ``with_id``."""
    kind: Modality
    """IMAGE, AUDIO or VIDEO, sniffed from the bytes, never from the extension."""
    mime_type: str
    """E.g. "image/png", "audio/wav", "video/mp4"."""
    name: str
    """File name for display, with control characters and RTL overrides escaped (A9)."""
    path: Path | None = None
    """Resolved path when the attachment came from a file; bytes are then read lazily."""
    size_bytes: int
    sha256: str
    """Hex digest of the bytes: the content identity."""
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    """Seconds, for audio and video."""
    has_audio: bool | None = None
    """For video: whether there is an audio track."""

    _data: bytes | None = PrivateAttr(default=None)
    _limits: MediaLimits = PrivateAttr(default=DEFAULT_LIMITS)
    _caches: _Caches = PrivateAttr(default_factory=_Caches)

    @field_validator("name", "id")
    @classmethod
    def _escape(cls, value: str | None) -> str | None:
        return None if value is None else _safe_name(value)

    @field_validator("kind")
    @classmethod
    def _media_only(cls, value: Modality) -> Modality:
        if value is Modality.TEXT:
            raise ValueError("an attachment is an image, audio or video")
        return value

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], limits: MediaLimits = DEFAULT_LIMITS) -> Attachment:
        """Validate and attach a file; its bytes stay on disk until needed."""
        given = Path(os.fsdecode(path))  # "~" stays literal: expanding it is the caller's decision
        source = _safe_name(str(given))
        resolved = _resolve_inside(given, source, limits)
        _check_file(resolved, source, limits)  # from stat, before any open: opening a device can act
        fp, before = _open_regular(resolved, source)
        with fp:  # hashed and probed through this one descriptor: what is checked is what is read
            _byte_cap(source, before.st_size, limits)
            digest, head, size = _hash_stream(fp, source, limits)
            probe = _probe(lambda: _reread(fp), head, source, limits)
            if _stamp_of(os.fstat(fp.fileno())) != _stamp_of(before) or size != before.st_size:
                raise AttachmentError(source, "changed while it was being attached")
        att = cls(name=given.name or source, path=resolved, size_bytes=size, sha256=digest, **vars(probe))
        att._limits, att._caches.stamp = limits, _settled(before)
        return att

    @classmethod
    def from_bytes(
        cls, data: bytes, name: str = "<bytes>", limits: MediaLimits = DEFAULT_LIMITS
    ) -> Attachment:
        """Validate and attach in-memory bytes."""
        source, data = _safe_name(name), bytes(data)
        _byte_cap(source, len(data), limits)
        if not data:
            raise AttachmentError(source, "is empty (0 bytes)")
        digest = hashlib.sha256(data).hexdigest()
        probe = _PROBED.get((digest, limits))
        if probe is None:
            probe = _probe(lambda: io.BytesIO(data), data[:_HEAD], source, limits)
            _PROBED.put((digest, limits), probe)
        att = cls(name=name, size_bytes=len(data), sha256=digest, **vars(probe))
        att._data, att._limits = data, limits
        return att

    @classmethod
    def from_image(cls, image: Image.Image, name: str = "<image>") -> Attachment:
        """Attach a PIL image (a generated one, say) as PNG."""
        buf = io.BytesIO()
        with _decoding(_safe_name(name), "cannot encode image as PNG"):
            png_ok = image.mode in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")
            (image if png_ok else _to_rgb(image)).save(buf, format="PNG")
        return cls.from_bytes(buf.getvalue(), name)

    @classmethod
    def from_audio(cls, samples: np.ndarray, sample_rate: int, name: str = "<audio>") -> Attachment:
        """Attach samples as a 16-bit WAV: float in [-1, 1] or int16; 1-D mono or (frames, channels)."""
        source, arr = _safe_name(name), np.asarray(samples)
        rate = int(sample_rate) if isinstance(sample_rate, (int, float, np.number)) else 0
        # (channels, frames) is the usual mistake: more than 16 channels is not a real recording
        if arr.ndim not in (1, 2) or (arr.ndim == 2 and not 1 <= arr.shape[1] <= 16) or rate <= 0:
            raise AttachmentError(source, f"expects 1-D or (frames, channels) samples and a positive rate, "
                                          f"got shape {arr.shape} at {sample_rate!r} Hz")
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.round(np.clip(np.nan_to_num(arr), -1.0, 1.0) * 32767)
        elif arr.dtype != np.int16:
            raise AttachmentError(source, f"expects float or int16 samples, got {arr.dtype}")
        pcm = arr.astype("<i2")
        pcm = pcm[:, None] if pcm.ndim == 1 else pcm
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(pcm.shape[1])
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(pcm.tobytes())
        return cls.from_bytes(buf.getvalue(), name)

    @classmethod
    def from_content_block(cls, block: Mapping[str, Any], limits: MediaLimits = DEFAULT_LIMITS) -> Attachment:
        """Attach a chat content block (LangChain v1/v0, OpenAI, Anthropic); the kind is still sniffed."""
        if not isinstance(block, Mapping):
            raise AttachmentError("<content block>", f"expected a mapping, got {type(block).__name__}")
        name = str(block.get("filename") or block.get("name") or f"<{block.get('type')} block>")
        return cls.from_bytes(_block_bytes(block, _safe_name(name), limits), name, limits)

    @classmethod
    def coerce(cls, obj: object, limits: MediaLimits = DEFAULT_LIMITS) -> Attachment:
        """Whatever a user passes as media: a path, bytes, a PIL image, (samples, rate), a block."""
        if isinstance(obj, Attachment):
            return obj
        if isinstance(obj, str) and (obj[:5].lower() == "data:" or "://" in obj[:12]):
            return cls.from_content_block({"type": "file", "url": obj}, limits)
        if isinstance(obj, (str, os.PathLike)):
            return cls.from_path(obj, limits)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(obj), limits=limits)
        if isinstance(obj, Image.Image):
            return cls.from_image(obj)
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], np.ndarray):
            return cls.from_audio(obj[0], obj[1])
        if isinstance(obj, Mapping):
            return cls.from_content_block(obj, limits)
        raise AttachmentError(f"<{type(obj).__name__}>", "cannot be attached: expected a path, bytes, "
                              "a PIL image, (samples, sample_rate), a content block or an Attachment")

    def with_id(self, id: str) -> Attachment:
        """A copy with a planner handle; shares the bytes and the decode caches."""
        return self.model_copy(update={"id": _safe_name(id)})

    # -- content -----------------------------------------------------------------------

    def _open(self) -> IO[bytes]:
        """The bytes that were checked, opened again for a decode (a second turn, a video's sound track).

        A file attached by path is read again later, so what was checked at attach time (A1, A2,
        the hash) must hold for what is decoded now, whatever happened on disk in between:

        - the allowed-roots check runs again, and the path must still resolve to itself (a folder
          on the way swapped for a symlink is refused);
        - the file is opened without following a symlink in its last component (a file swapped
          for a symlink is refused, even one made between the check and the open);
        - the open descriptor must be the same file, unchanged: same device, inode, size, and
          modification and change times (``os.fstat``) as when it was attached. Otherwise — or when
          that identity cannot be trusted (the file had changed less than 2 s before it was
          attached, within a coarse timestamp's tick; or the attachment was deserialised) — the
          content is hashed through that descriptor and must match ``sha256``;
        - decoding then reads from that same descriptor.

        Raises:
            AttachmentError: the file moved, was replaced or changed since it was attached.
        """
        if self._data is not None:
            return io.BytesIO(self._data)
        if self.path is None:
            raise AttachmentError(self.name, "has no bytes (deserialised without a path)")
        if _resolve_inside(self.path, self.name, self._limits) != self.path:
            raise AttachmentError(self.name, "no longer resolves to the file that was attached (a symbolic link "
                                             "was put on its path)")
        fp, now = _open_regular(self.path, self.name)
        try:
            if self._caches.stamp is None or _stamp_of(now) != self._caches.stamp:
                digest, _head, _size = _hash_stream(fp, self.name, self._limits)
                if digest != self.sha256:
                    raise AttachmentError(self.name, "changed on disk since it was attached")
                fp.seek(0)
                self._caches.stamp = _settled(now)
        except BaseException:
            fp.close()
            raise
        return fp

    @property
    def held_bytes(self) -> int:
        """Memory this attachment holds now: its bytes (when kept in memory) and its decoded image and audio.

        What a server counts against a session's bound (``ServeSettings.max_session_bytes``).
        """
        caches = self._caches
        image = caches.image
        decoded = (image.width * image.height * len(image.getbands())) if image is not None else 0
        decoded += sum(samples.nbytes for samples in caches.audio.values())
        return (len(self._data) if self._data is not None else 0) + decoded

    def read_bytes(self) -> bytes:
        """The raw bytes; a file changed on disk since it was attached is refused."""
        if self._data is not None:
            return self._data
        with self._open() as fp, _decoding(self.name, "cannot read file"):
            data = fp.read(self.size_bytes + 1)
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise AttachmentError(self.name, "changed on disk since it was attached")
        return data

    def image(self) -> Image.Image:
        """RGB, EXIF-transposed, decoded once and cached. Shared: copy it before drawing on it."""
        if self.kind is not Modality.IMAGE:
            raise AttachmentError(self.name, f"is {self.kind.value}, not an image")
        with self._caches.lock:
            if self._caches.image is None:
                subtype = self.mime_type.partition("/")[2]
                with _decoding(self.name, "cannot decode image"), self._open() as fp, \
                        _open_image(fp, subtype, self.name, self._limits) as im:
                    im.load()
                    self._caches.image = _to_rgb(_upright(im))
            return self._caches.image

    def audio(self, sample_rate: int = 16000) -> np.ndarray:
        """Float32 mono in [-1, 1] at ``sample_rate``, cached per rate and read-only.

        Works for audio and for a video's audio track; empty audio gives an empty array.
        """
        if self.kind is Modality.IMAGE:
            raise AttachmentError(self.name, "is an image, not audio")
        if self.has_audio is False:
            raise AttachmentError(self.name, "has no audio track")
        if int(sample_rate) <= 0:
            raise AttachmentError(self.name, f"cannot resample to {sample_rate} Hz")
        with self._caches.lock:
            if int(sample_rate) not in self._caches.audio:
                samples = self._decode_audio(int(sample_rate))
                samples.flags.writeable = False
                self._caches.audio[int(sample_rate)] = samples
            return self._caches.audio[int(sample_rate)]

    def _decode_audio(self, rate: int) -> np.ndarray:
        """The whole sound at ``rate``: the streamed chunks of :meth:`iter_audio`, joined."""
        chunks = list(self.iter_audio(rate))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def iter_audio(self, sample_rate: int = 16000) -> Iterator[np.ndarray]:
        """The sound as float32 mono chunks in [-1, 1] at ``sample_rate``, streamed and never cached.

        For tools that walk a long recording window by window: memory holds one decoded chunk,
        not the file. FFmpeg decodes and resamples; the duration cap holds even if the header lied.

        The downmix is the mean of the channels (as ``librosa.to_mono``): it never adds gain, so a
        loud stereo recording is neither louder nor clipped in mono, and identical channels come out
        at exactly their own level (A7). FFmpeg's own mono layout would sum the channels at 0.707
        each, +3 dB for a centred voice, and clip what was near full scale.

        Raises:
            AttachmentError: an image, no audio track, or a decoder failure (naming the file).
            MediaLimitError: more sound than the duration cap.
        """
        if self.kind is Modality.IMAGE:
            raise AttachmentError(self.name, "is an image, not audio")
        if self.has_audio is False:
            raise AttachmentError(self.name, "has no audio track")
        rate = int(sample_rate)
        cap = self._limits.max_video_seconds if self.kind is Modality.VIDEO else self._limits.max_audio_seconds
        total = 0
        with self.open_av() as container, _decoding(self.name, "cannot decode audio"):
            if not container.streams.audio:
                raise AttachmentError(self.name, "has no audio track")
            resampler = av.AudioResampler(format="fltp", rate=rate)  # keeps the channels: mixed below
            # chain, not (*decode(...), None): a tuple would decode the whole track before the first chunk
            for frame in itertools.chain(container.decode(container.streams.audio[0]), [None]):
                for out in resampler.resample(frame):
                    planes = out.to_ndarray()  # (channels, samples)
                    mono = planes.mean(axis=0) if planes.shape[0] > 1 else planes[0]
                    total += out.samples
                    yield np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
                if total > cap * rate:
                    _duration_cap(self.name, self.kind, total / rate, self._limits)

    @contextmanager
    def open_av(self) -> Iterator[Any]:
        """An open PyAV container, for tools that stream video frames; closed on exit."""
        if self.kind is Modality.IMAGE:
            raise AttachmentError(self.name, "is an image, not audio or video")
        demuxer = _AV_DEMUXERS.get(self.mime_type.partition("/")[2])
        with self._open() as fp:
            with _decoding(self.name, "cannot open media"):
                container = av.open(fp, format=demuxer)
            with container:
                yield container

    # -- presentation ------------------------------------------------------------------

    def describe(self) -> str:
        """What the planner sees: ``video_1: video/mp4 12.0 s 640x360 with audio (clip.mp4)``."""
        parts = [f"{self.id or self.kind.value}: {self.mime_type}"]
        if self.duration is not None:
            parts.append(f"{self.duration:.1f} s")
        if self.width and self.height:
            parts.append(f"{self.width}x{self.height}")
        if self.kind is Modality.VIDEO and self.has_audio is not None:
            parts.append("with audio" if self.has_audio else "without audio")
        return " ".join([*parts, f"({self.name})"])

    def to_content_block(self) -> dict[str, Any]:
        """A LangChain v1 standard content block carrying the bytes as base64."""
        data = base64.b64encode(self.read_bytes()).decode("ascii")
        return {"type": self.kind.value, "base64": data, "mime_type": self.mime_type}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bytes atomically (temp file + rename), so a crash never leaves half a file."""
        target = Path(path)
        data = self.read_bytes()
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            msg = f"cannot save to {_safe_name(str(target))} ({_short(exc)})"
            raise AttachmentError(self.name, msg) from exc
        return target
