"""Real media files generated on the fly (images, WAV, speech, MP4), so tests never need fixtures on disk.

Every generator writes into a given folder and returns the Path. Content is simple and known
(solid colours, pure tones, coloured scenes) so tests can assert on what a tool should find.
:class:`MediaFactory` binds the generators to one folder; conftest's ``media`` fixture is one.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

RGB = tuple[int, int, int]
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEFAULT_SCENES: tuple[tuple[RGB, float], ...] = (((255, 0, 0), 2.0), ((0, 255, 0), 2.0))

# Encoder preference per container; the first one this PyAV/FFmpeg build can *encode* wins.
_VIDEO_ENCODERS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "h264", "mpeg4"),
    ".mov": ("libx264", "h264", "mpeg4"),
    ".mkv": ("libx264", "h264", "mpeg4"),
    ".avi": ("mpeg4", "mjpeg"),
    ".webm": ("libvpx", "libvpx-vp9"),
}
_AUDIO_ENCODERS: dict[str, tuple[str, ...]] = {
    ".mp4": ("aac",), ".mov": ("aac",), ".mkv": ("aac", "libopus", "libmp3lame"),
    ".avi": ("libmp3lame", "mp3", "aac"), ".webm": ("libopus", "opus"),
}


# ------------------------------------------------------------------------ images ---
def _image(folder: Path, name: str, size: tuple[int, int], color: RGB, fmt: str) -> Path:
    from PIL import Image

    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.new("RGB", size, color).save(path, fmt, **kwargs)
    return path


def png_image(folder: Path, name: str = "photo.png", size: tuple[int, int] = (64, 48),
              color: RGB = (200, 30, 30)) -> Path:
    """Solid-colour RGB PNG of ``size`` (width, height)."""
    return _image(folder, name, size, color, "PNG")


def jpeg_image(folder: Path, name: str = "photo.jpg", size: tuple[int, int] = (64, 48),
               color: RGB = (200, 30, 30)) -> Path:
    """Solid-colour RGB JPEG (quality 95: colours survive within a few units)."""
    return _image(folder, name, size, color, "JPEG")


def text_image(folder: Path, text: str = "HELLO WORLD", name: str = "text.png", font_size: int = 48,
               padding: int = 24) -> Path:
    """Black text on white, sized to fit; DejaVu Sans when installed so OCR can read it back."""
    from PIL import Image, ImageDraw, ImageFont

    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    if DEJAVU.exists():
        font = ImageFont.truetype(str(DEJAVU), font_size)
    else:
        font = ImageFont.load_default(size=font_size)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=font, spacing=font_size // 3)
    size = (int(right - left) + 2 * padding, int(bottom - top) + 2 * padding)
    img = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(img).multiline_text((padding - left, padding - top), text, fill=(0, 0, 0), font=font,
                                       spacing=font_size // 3)
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


# ------------------------------------------------------------------------- audio ---
def tone(seconds: float = 1.0, sample_rate: int = 16_000, freq: float = 440.0, amplitude: float = 0.5,
         silent: bool = False) -> np.ndarray:
    """Mono float32 sine wave in [-amplitude, amplitude] (zeros when ``silent``)."""
    n = int(round(seconds * sample_rate))
    if silent:
        return np.zeros(n, dtype=np.float32)
    t = np.arange(n, dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int,
              dtype: Literal["int16", "float32"] = "int16") -> Path:
    """Write (n,) or (n, channels) float samples as a RIFF WAV: PCM int16 or IEEE float32.

    Hand-written header so tests need neither soundfile nor the stdlib ``wave`` module (which
    cannot write float WAVs).
    """
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    channels = data.shape[1]
    if dtype == "int16":
        payload = (np.clip(data, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
        fmt_tag, width = 1, 2
    elif dtype == "float32":
        payload = data.astype("<f4").tobytes()
        fmt_tag, width = 3, 4
    else:
        raise ValueError(f"dtype must be 'int16' or 'float32', not {dtype!r}")
    block = channels * width
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, sample_rate, sample_rate * block, block, 8 * width)
    chunks = [b"fmt ", struct.pack("<I", len(fmt)), fmt]
    if fmt_tag == 3:  # non-PCM formats carry a 'fact' chunk with the frame count
        chunks += [b"fact", struct.pack("<II", 4, data.shape[0])]
    chunks += [b"data", struct.pack("<I", len(payload)), payload]
    body = b"WAVE" + b"".join(chunks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def wav_file(folder: Path, name: str = "tone.wav", seconds: float = 1.0, sample_rate: int = 16_000,
             freq: float = 440.0, channels: int = 1, dtype: Literal["int16", "float32"] = "int16",
             silent: bool = False) -> Path:
    """WAV holding a pure tone (the same tone on every channel), or silence."""
    mono = tone(seconds, sample_rate, freq, silent=silent)
    return write_wav(Path(folder) / name, np.repeat(mono[:, None], channels, axis=1), sample_rate, dtype)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speech_wav(folder: Path, text: str = "hello world, this is a test.", name: str = "speech.wav",
               voice: str = "en", words_per_minute: int = 160) -> Path | None:
    """Spoken ``text`` rendered by espeak-ng (mono int16, 22050 Hz); None when espeak-ng is missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    return path


# ------------------------------------------------------------------------- video ---
def can_encode(codec: str) -> bool:
    """True when this PyAV build has an *encoder* named ``codec`` (codecs_available mixes in decoders)."""
    import av

    if codec not in av.codecs_available:
        return False
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        return False
    return True


def pick_encoder(suffix: str, kind: Literal["video", "audio"]) -> str:
    """First encoder for container ``suffix`` ('.mp4', ...) that this build has."""
    table = _VIDEO_ENCODERS if kind == "video" else _AUDIO_ENCODERS
    prefs = table.get(suffix.lower())
    if prefs is None:
        raise ValueError(f"no {kind} encoder known for {suffix!r}; use one of {sorted(table)}")
    for codec in prefs:
        if can_encode(codec):
            return codec
    raise RuntimeError(f"PyAV has none of the {kind} encoders {prefs} for {suffix}")


def video_frame_count(scenes: Sequence[tuple[RGB, float]], fps: int) -> int:
    """Frames video_file writes for ``scenes`` at ``fps`` (each scene rounded to whole frames)."""
    return sum(int(round(seconds * fps)) for _color, seconds in scenes)


def video_file(folder: Path, name: str = "clip.mp4", scenes: Sequence[tuple[RGB, float]] = DEFAULT_SCENES,
               fps: int = 10, size: tuple[int, int] = (64, 48),
               audio: Literal["tone", "silence"] | None = None, sample_rate: int = 16_000,
               freq: float = 440.0, video_codec: str | None = None) -> Path:
    """Encode solid-colour scenes ``[(rgb, seconds), ...]`` with PyAV; optionally a mono audio track.

    The codec follows the suffix (mp4/mov/mkv: libx264 if present else mpeg4; avi: mpeg4; webm: VP8)
    unless ``video_codec`` is given. ``size`` is (width, height) and must be even (yuv420p). Frame
    count is :func:`video_frame_count`; the audio track (AAC for mp4/mov/mkv, MP3 for avi, Opus for
    webm) lasts as long as the video.
    """
    width, height = size

    def frames() -> Iterator[np.ndarray]:
        for color, seconds in scenes:
            arr = np.empty((height, width, 3), dtype=np.uint8)
            arr[:] = np.asarray(color, dtype=np.uint8)
            for _ in range(int(round(seconds * fps))):
                yield arr

    seconds = video_frame_count(scenes, fps) / fps
    sound = None if audio is None else [tone(seconds, sample_rate, freq, silent=audio == "silence")]
    return write_video(Path(folder) / name, frames(), fps, size, sound, sample_rate, video_codec)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: int, size: tuple[int, int],
                audio: Iterable[np.ndarray] | None = None, sample_rate: int = 16_000,
                video_codec: str | None = None) -> Path:
    """Encode RGB ``frames`` (h, w, 3 uint8, streamed) and optional mono float ``audio`` chunks with PyAV.

    Neither the frames nor the sound are held: a long generated call costs the memory of one frame
    and one chunk. The codec follows the suffix as in :func:`video_file`.
    """
    import av

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"video size must be even for yuv420p, got {size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec = video_codec or pick_encoder(path.suffix, "video")
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream(vcodec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if vcodec == "mjpeg":
            vstream.pix_fmt = "yuvj420p"
        astream = None
        if audio is not None:
            astream = container.add_stream(pick_encoder(path.suffix, "audio"), rate=sample_rate)
            astream.layout = "mono"
        for pts, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, fps)
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        if astream is not None and audio is not None:
            _encode_audio(container, astream, audio, sample_rate)
    return path


def _encode_audio(container: object, stream: object, chunks: Iterable[np.ndarray], sample_rate: int) -> None:
    """Mono float chunks in order; PyAV's encoder resamples to the codec's format and re-chunks to frame_size."""
    import av

    pts = 0
    for chunk in chunks:
        frame = av.AudioFrame.from_ndarray(np.asarray(chunk, dtype=np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, pts, Fraction(1, sample_rate)
        pts += frame.samples
        container.mux(stream.encode(frame))  # type: ignore[attr-defined]
    container.mux(stream.encode(None))  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- damage ---
def corrupt_copy(src: Path, dst: Path, keep_bytes: int) -> Path:
    """Copy only the first ``keep_bytes`` bytes of ``src`` to ``dst`` (a truncated, broken file)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        dst.write_bytes(f.read(max(0, keep_bytes)))
    return dst


class MediaFactory:
    """The generators above bound to one folder: ``media.png()``, ``media.wav(seconds=2)``, ...

    Default file names differ per kind; pass ``name=`` to make several files of one kind.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def png(self, name: str = "photo.png", size: tuple[int, int] = (64, 48),
            color: RGB = (200, 30, 30)) -> Path:
        return png_image(self.folder, name, size, color)

    def jpeg(self, name: str = "photo.jpg", size: tuple[int, int] = (64, 48),
             color: RGB = (200, 30, 30)) -> Path:
        return jpeg_image(self.folder, name, size, color)

    def text_image(self, text: str = "HELLO WORLD", name: str = "text.png", font_size: int = 48) -> Path:
        return text_image(self.folder, text, name, font_size)

    def wav(self, name: str = "tone.wav", seconds: float = 1.0, sample_rate: int = 16_000,
            freq: float = 440.0, channels: int = 1, dtype: Literal["int16", "float32"] = "int16",
            silent: bool = False) -> Path:
        return wav_file(self.folder, name, seconds, sample_rate, freq, channels, dtype, silent)

    def speech(self, text: str = "hello world, this is a test.", name: str = "speech.wav") -> Path:
        """espeak-ng speech; skips the calling test when espeak-ng is not installed."""
        path = speech_wav(self.folder, text, name)
        if path is None:
            import pytest

            pytest.skip("espeak-ng is not installed")
        return path

    def video(self, name: str = "clip.mp4", scenes: Sequence[tuple[RGB, float]] = DEFAULT_SCENES,
              fps: int = 10, size: tuple[int, int] = (64, 48),
              audio: Literal["tone", "silence"] | None = None, video_codec: str | None = None) -> Path:
        return video_file(self.folder, name, scenes, fps, size, audio, video_codec=video_codec)

    def corrupt(self, src: Path, keep_bytes: int, name: str | None = None) -> Path:
        """Truncated copy of ``src`` in this folder (default name: ``truncated_<src name>``)."""
        return corrupt_copy(src, self.folder / (name or f"truncated_{Path(src).name}"), keep_bytes)
