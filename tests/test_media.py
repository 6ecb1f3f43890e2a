"""Attachment: sniffing, caps, path policy, lazy decoding (RELIABILITY.md A1-A10).

All media are generated here with Pillow, numpy, PyAV and the stdlib wave module, so no binary
is committed and each test says exactly what its file contains.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import io
import os
import struct
import warnings
import wave
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from polymodal.errors import AttachmentError, MediaLimitError
from polymodal.media import DEFAULT_LIMITS, Attachment, MediaLimits, Modality

# ---------------------------------------------------------------- generators (private to this file)


def _image(fmt: str = "PNG", size: tuple[int, int] = (32, 24), mode: str = "RGB", **save: Any) -> bytes:
    color: Any = (200, 30, 30) if mode == "RGB" else (200, 30, 30, 0) if mode == "RGBA" else 128
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt, **save)
    return buf.getvalue()


def _noise_image(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """Noise compresses badly, so truncating the file really cuts pixel data."""
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries one byte of pixel data: a bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _wav16(samples: np.ndarray, rate: int) -> bytes:
    """int16 PCM WAV with the stdlib; samples are float in [-1, 1], 1-D or (frames, channels)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    pcm = pcm[:, None] if pcm.ndim == 1 else pcm
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(pcm.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return buf.getvalue()


def _encode_audio(fmt: str, codec: str, samples: np.ndarray, rate: int) -> bytes:
    """Mono float samples through a PyAV encoder (it converts sample format and frame size itself)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def _video(fmt: str = "mp4", codec: str = "libx264", *, audio: bool = False, frames: int = 10,
           fps: int = 10, size: tuple[int, int] = (64, 48)) -> bytes:
    """A tiny clip of flat grey frames; with audio=True, a 440 Hz AAC/Opus track as long as the video."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        packets = []
        if audio:  # every stream must exist before the first packet is muxed
            rate = 48000 if fmt == "webm" else 16000
            sound = out.add_stream("libopus" if fmt == "webm" else "aac", rate=rate, layout="mono")
            frame = av.AudioFrame.from_ndarray(_sine(440, frames / fps, rate)[None, :], format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, 0
            packets += [*sound.encode(frame), *sound.encode(None)]
        for i in range(frames):
            arr = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
            packets += video.encode(av.VideoFrame.from_ndarray(arr, format="rgb24"))
        for packet in [*packets, *video.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _spy_on_open(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every path passed to open() or os.open(), to prove a refusal happened before the file was opened."""
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def os_spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(os, "open", os_spy)
    return opened


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- sniffing (A3)


@pytest.mark.parametrize(("fmt", "mime"), [
    ("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"),
    ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("TIFF", "image/tiff"),
])
def test_A3_images_are_sniffed_from_bytes(fmt: str, mime: str) -> None:
    att = Attachment.from_bytes(_image(fmt), "x.bin")
    assert (att.kind, att.mime_type, att.width, att.height) == (Modality.IMAGE, mime, 32, 24)
    assert att.image().size == (32, 24) and att.image().mode == "RGB"


@pytest.mark.parametrize(("fmt", "codec", "rate", "mime"), [
    ("wav", "pcm_f32le", 16000, "audio/wav"), ("flac", "flac", 16000, "audio/flac"),
    ("ogg", "libopus", 48000, "audio/ogg"), ("mp3", "libmp3lame", 16000, "audio/mpeg"),
    ("ipod", "aac", 16000, "audio/mp4"), ("mp4", "aac", 16000, "audio/mp4"),
])
def test_A3_audio_is_sniffed_and_an_audio_only_mp4_is_audio(fmt: str, codec: str, rate: int, mime: str) -> None:
    att = Attachment.from_bytes(_encode_audio(fmt, codec, _sine(440, 0.5, rate), rate), "clip.mp4")
    assert (att.kind, att.mime_type) == (Modality.AUDIO, mime)
    assert att.duration == pytest.approx(0.5, abs=0.05)
    assert att.width is None and att.has_audio is None


def test_A3_mp3_without_id3_is_sniffed_from_the_frame_sync() -> None:
    data = _encode_audio("mp3", "libmp3lame", _sine(440, 0.5, 16000), 16000)
    tag_size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10]))  # ID3 sizes are 7-bit
    bare = data[tag_size:]
    assert bare[0] == 0xFF
    assert Attachment.from_bytes(bare).mime_type == "audio/mpeg"


def test_A3_cover_art_does_not_make_audio_a_video() -> None:
    """MP3/M4A/FLAC carry album art as a one-frame "attached picture" video stream."""
    buf, rate = io.BytesIO(), 16000
    with av.open(buf, "w", format="mp3") as out:
        sound = out.add_stream("libmp3lame", rate=rate, layout="mono")
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        frame = av.AudioFrame.from_ndarray(_sine(440, 0.5, rate)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        picture = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in [*cover.encode(picture), *cover.encode(None), *sound.encode(frame), *sound.encode(None)]:
            out.mux(packet)
    att = Attachment.from_bytes(buf.getvalue(), "song.mp3")
    assert (att.kind, att.mime_type, att.width) == (Modality.AUDIO, "audio/mpeg", None)
    assert _peak_hz(att.audio(), 16000) == pytest.approx(440, abs=5)


@pytest.mark.parametrize(("fmt", "codec", "mime"), [
    ("mp4", "libx264", "video/mp4"), ("mp4", "mpeg4", "video/mp4"), ("mov", "libx264", "video/quicktime"),
    ("webm", "libvpx", "video/webm"), ("matroska", "libx264", "video/x-matroska"),
])
def test_A3_video_is_sniffed_and_probed(fmt: str, codec: str, mime: str) -> None:
    att = Attachment.from_bytes(_video(fmt, codec), "clip.bin")
    assert (att.kind, att.mime_type, att.width, att.height) == (Modality.VIDEO, mime, 64, 48)
    assert att.duration == pytest.approx(1.0, abs=0.1)
    assert att.has_audio is False


def test_A3_extension_is_ignored_both_ways(tmp_path: Path) -> None:
    with pytest.raises(AttachmentError, match=r"fake\.png.*looks like text"):
        Attachment.from_path(_write(tmp_path, "fake.png", b"hello, I am not an image\n"))
    att = Attachment.from_path(_write(tmp_path, "picture.wav", _image("PNG")))
    assert (att.kind, att.mime_type) == (Modality.IMAGE, "image/png")


@pytest.mark.parametrize(("data", "looks"), [
    (b"\x7fELF\x02\x01\x01" + bytes(64), "ELF"), (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
    (b"%PDF-1.7\n", "PDF"), (b"PK\x03\x04" + bytes(30), "ZIP"), (bytes(range(256)) * 4, "unrecognised"),
    (b"BMW is a car brand, not a bitmap", "text"), ("caf\u00e9 ".encode() * 20, "text"),
], ids=["elf", "html", "pdf", "zip", "binary", "bm-text", "utf8-text"])
def test_A3_unsupported_content_is_refused_naming_the_file(data: bytes, looks: str) -> None:
    with pytest.raises(AttachmentError, match="not a supported image, audio or video file") as err:
        Attachment.from_bytes(data, "upload.jpg")
    assert err.value.source == "upload.jpg" and looks in str(err.value)
    assert not isinstance(err.value, MediaLimitError)


def test_A4_zero_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AttachmentError, match="empty"):
        Attachment.from_bytes(b"", "empty.png")
    with pytest.raises(AttachmentError, match=r"empty\.wav: is empty"):
        Attachment.from_path(_write(tmp_path, "empty.wav", b""))


# ---------------------------------------------------------------- corruption (A4)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_A4_truncated_images_fail_at_attach_time(fmt: str) -> None:
    data = _noise_image(fmt)
    with pytest.raises(AttachmentError, match="cannot decode image") as err:
        Attachment.from_bytes(data[: len(data) // 2], f"cut.{fmt.lower()}")
    assert not isinstance(err.value, MediaLimitError)


def test_A4_garbage_wav_fails_at_attach_time() -> None:
    garbage = b"RIFF" + struct.pack("<I", 600) + b"WAVE" + bytes(range(256)) * 2
    with pytest.raises(AttachmentError, match=r"noise\.wav: cannot decode media"):
        Attachment.from_bytes(garbage, "noise.wav")


@pytest.mark.parametrize("cut", ["truncated", "scrambled"])
def test_A4_corrupt_mp4_fails_at_attach_time(cut: str) -> None:
    data = _video()
    if cut == "truncated":  # the moov atom (the index) is at the end: without it nothing plays
        broken = data[: len(data) // 2]
    else:  # keep the ftyp box, overwrite everything after it
        broken = data[:32] + bytes(np.random.default_rng(1).integers(0, 255, len(data) - 32, dtype=np.uint8))
    with pytest.raises(AttachmentError, match=r"clip\.mp4: "):
        Attachment.from_bytes(broken, "clip.mp4")


def test_A4_corrupt_frames_behind_a_valid_index_fail_at_attach_time(tmp_path: Path) -> None:
    """moov first (faststart) and zeroed frames: the container opens, only decoding a frame tells."""
    path = tmp_path / "fast.mp4"  # faststart rewrites the file, so it cannot go to a BytesIO
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    data = path.read_bytes()
    assert Attachment.from_bytes(data).kind is Modality.VIDEO
    mdat = data.index(b"mdat") + 4
    assert data.index(b"moov") < mdat
    with pytest.raises(AttachmentError, match=r"fast\.mp4: cannot decode media"):
        Attachment.from_bytes(data[:mdat] + bytes(len(data) - mdat), "fast.mp4")


def test_A4_no_decoder_exception_escapes_on_mutated_files() -> None:
    """A small fuzz: whatever Pillow or FFmpeg throws must arrive as an AttachmentError."""
    rng = np.random.default_rng(7)
    samples = [_image("PNG"), _noise_image("JPEG"), _image("GIF"), _image("TIFF"), _image("WEBP"),
               _image("BMP"), _wav16(_sine(440, 0.2, 8000), 8000), _video(frames=3)]
    for data in samples:
        for _ in range(12):
            mutated = bytearray(data)
            for pos in rng.integers(8, len(data), 4):
                mutated[pos] = int(rng.integers(0, 256))
            for candidate in (bytes(mutated), bytes(mutated[: int(rng.integers(12, len(data)))])):
                with contextlib.suppress(AttachmentError):  # anything else fails the test
                    Attachment.from_bytes(candidate, "fuzz")


# ---------------------------------------------------------------- caps (A5, A6)


def test_A5_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = _png_header(100_000, 100_000)
    assert len(bomb) < 100
    with pytest.raises(MediaLimitError, match="refused before decoding"):
        Attachment.from_bytes(bomb, "bomb.png")


@pytest.mark.parametrize("side", [9_000, 12_000])  # below and inside Pillow's own warning zone
def test_A5_pixel_cap_is_ours_and_checked_before_decoding(side: int) -> None:
    """Decoding this one-byte IDAT would give "truncated"; a limit error proves nothing was decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak either
        with pytest.raises(MediaLimitError) as err:
            Attachment.from_bytes(_png_header(side, side), "big.png")
    assert f"{side}x{side}" in str(err.value) and "MediaLimits(max_pixels=...)" in str(err.value)


def test_A6_pixel_cap_is_configurable() -> None:
    data = _image("PNG", (20, 20))
    with pytest.raises(MediaLimitError, match="400 pixels, over the 100 pixel cap"):
        Attachment.from_bytes(data, limits=MediaLimits(max_pixels=100))
    assert Attachment.from_bytes(data, limits=MediaLimits(max_pixels=400)).width == 20


def test_A6_byte_cap_is_checked_from_stat_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as fp:
        fp.write(_image("PNG"))
        fp.truncate(DEFAULT_LIMITS.max_bytes + 1)  # sparse: costs no disk and must cost no reading
    opened = _spy_on_open(monkeypatch)
    with pytest.raises(MediaLimitError, match=r"huge\.png: .*byte cap \(raise it with MediaLimits\(max_byt"):
        Attachment.from_path(sparse)
    assert str(sparse) not in opened
    with pytest.raises(MediaLimitError, match="byte cap"):
        Attachment.from_bytes(_image("PNG"), limits=MediaLimits(max_bytes=10))


def test_A6_duration_caps_say_how_to_raise_them() -> None:
    wav = _wav16(_sine(440, 1.0, 8000), 8000)
    with pytest.raises(MediaLimitError, match=r"1\.0 s long, over the 0\.5 s cap.*max_audio_seconds=\.\.\."):
        Attachment.from_bytes(wav, "long.wav", MediaLimits(max_audio_seconds=0.5))
    with pytest.raises(MediaLimitError, match=r"max_video_seconds=\.\.\."):
        Attachment.from_bytes(_video(), "long.mp4", MediaLimits(max_video_seconds=0.5))
    video_cap_only = MediaLimits(max_audio_seconds=0.5)  # a video is held to the video cap
    assert Attachment.from_bytes(_video(), "ok.mp4", video_cap_only).kind is Modality.VIDEO


def test_A6_duration_cap_holds_while_decoding_even_if_the_header_lied(tmp_path: Path) -> None:
    att = Attachment.from_path(_write(tmp_path, "memo.wav", _wav16(_sine(440, 2.0, 8000), 8000)))
    att._limits = MediaLimits(max_audio_seconds=0.5)  # as if the header had said 0.2 s: the probe passed
    with pytest.raises(MediaLimitError, match="max_audio_seconds"):
        att.audio()


def test_limits_are_frozen_and_validated() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_LIMITS.max_bytes = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        MediaLimits(max_pixels=0)


# ---------------------------------------------------------------- paths (A1, A2)


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    _write(inside, "ok.png", _image())
    _write(outside, "secret.png", _image())
    return inside, outside


def test_A1_paths_outside_the_roots_are_refused_before_open(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, outside = roots
    limits = MediaLimits(allowed_roots=(inside,))
    opened = _spy_on_open(monkeypatch)
    for bad in (outside / "secret.png", inside / ".." / "outside" / "secret.png", "/etc/passwd"):
        with pytest.raises(AttachmentError, match="outside the allowed folders"):
            Attachment.from_path(bad, limits)
    assert not any("secret" in p or "passwd" in p for p in opened)
    assert Attachment.from_path(inside / "ok.png", limits).path == (inside / "ok.png").resolve()


def test_A1_relative_traversal_is_resolved_against_cwd(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, _ = roots
    monkeypatch.chdir(inside)
    limits = MediaLimits(allowed_roots=(inside,))
    assert Attachment.from_path("ok.png", limits).kind is Modality.IMAGE
    with pytest.raises(AttachmentError, match="outside the allowed folders"):
        Attachment.from_path("../outside/secret.png", limits)


def test_A2_symlink_escaping_a_root_is_refused(roots: tuple[Path, Path]) -> None:
    inside, outside = roots
    (inside / "link.png").symlink_to(outside / "secret.png")
    (inside / "dirlink").symlink_to(outside)
    (inside / "alias.png").symlink_to(inside / "ok.png")
    limits = MediaLimits(allowed_roots=(inside,))
    for bad in (inside / "link.png", inside / "dirlink" / "secret.png"):
        with pytest.raises(AttachmentError, match="outside the allowed folders"):
            Attachment.from_path(bad, limits)
    alias = Attachment.from_path(inside / "alias.png", limits)
    assert alias.name == "alias.png" and alias.path == (inside / "ok.png").resolve()


def test_A1_tilde_is_never_expanded(roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    inside, outside = roots
    monkeypatch.setenv("HOME", str(outside))
    monkeypatch.chdir(inside)
    with pytest.raises(AttachmentError, match="no such file"):
        Attachment.from_path("~/secret.png")
    with pytest.raises(AttachmentError, match="no such file|outside"):
        Attachment.from_path("~/secret.png", MediaLimits(allowed_roots=(outside,)))


def test_A1_A4_missing_directories_and_special_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AttachmentError, match=r"nope\.png: no such file"):
        Attachment.from_path(tmp_path / "nope.png")
    with pytest.raises(AttachmentError, match="is a directory"):
        Attachment.from_path(tmp_path)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AttachmentError, match="not a regular file"):  # reading it would block forever
        Attachment.from_path(fifo)
    with pytest.raises(AttachmentError, match="cannot resolve path|no such file|cannot access"):
        Attachment.from_path("bad\0name.png")


# ---------------------------------------------------------------- audio (A7, A8)


def test_A7_8khz_stereo_int16_becomes_16khz_mono_float() -> None:
    stereo = np.stack([_sine(440, 1.0, 8000), _sine(440, 1.0, 8000)], axis=1)
    att = Attachment.from_bytes(_wav16(stereo, 8000), "stereo.wav")
    out = att.audio()
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 16000) <= 32
    assert _peak_hz(out, 16000) == pytest.approx(440, abs=3)
    assert 0.3 < np.abs(out).max() <= 1.0


def test_A7_48khz_float32_is_resampled() -> None:
    att = Attachment.from_bytes(_encode_audio("wav", "pcm_f32le", _sine(1000, 1.5, 48000), 48000))
    out = att.audio(16000)
    assert abs(len(out) - 24000) <= 32
    assert _peak_hz(out, 16000) == pytest.approx(1000, abs=3)
    assert _peak_hz(att.audio(8000), 8000) == pytest.approx(1000, abs=3)  # cached per rate


def test_A7_zero_second_and_silent_audio() -> None:
    empty = Attachment.from_bytes(_wav16(np.zeros(0), 16000), "empty.wav")
    assert empty.duration == 0.0
    assert empty.audio().shape == (0,) and empty.audio().dtype == np.float32
    silence = Attachment.from_bytes(_wav16(np.zeros(8000), 8000), "quiet.wav").audio()
    assert len(silence) > 15000 and np.abs(silence).max() < 1e-6


def test_decoded_audio_is_cached_and_read_only() -> None:
    att = Attachment.from_bytes(_wav16(_sine(440, 0.2, 16000), 16000))
    first = att.audio()
    assert att.audio() is first and att.with_id("audio_1").audio() is first
    with pytest.raises(ValueError):
        first[0] = 1.0


def test_iter_audio_streams_what_audio_decodes_without_caching_it() -> None:
    att = Attachment.from_bytes(_wav16(_sine(440, 1.5, 8000), 8000), "tone.wav")
    chunks = list(att.iter_audio(16000))
    assert len(chunks) > 1 and all(c.dtype == np.float32 for c in chunks)  # decoded piece by piece
    assert np.array_equal(np.concatenate(chunks), att.audio(16000))
    with pytest.raises(AttachmentError, match=r"mute\.mp4: has no audio track"):
        next(Attachment.from_bytes(_video(), "mute.mp4").iter_audio())


def test_from_audio_round_trips() -> None:
    att = Attachment.from_audio(_sine(440, 0.5, 22050), 22050, "gen.wav")
    assert (att.kind, att.mime_type, att.name) == (Modality.AUDIO, "audio/wav", "gen.wav")
    assert att.duration == pytest.approx(0.5, abs=0.01)
    assert _peak_hz(att.audio(), 16000) == pytest.approx(440, abs=3)
    stereo = (np.stack([_sine(440, 0.5, 8000)] * 2, axis=1) * 32767).astype(np.int16)
    assert len(Attachment.from_audio(stereo, 8000).audio()) == pytest.approx(8000, abs=32)
    assert Attachment.from_audio(np.zeros(0, np.float32), 16000).duration == 0.0
    with pytest.raises(AttachmentError, match="float or int16"):
        Attachment.from_audio(np.zeros(10, np.uint8), 16000)
    for shape, rate in (((2, 2, 2), 16000), ((2, 16000), 16000), ((10,), 0), ((10,), "fast")):
        with pytest.raises(AttachmentError, match="positive rate"):
            Attachment.from_audio(np.zeros(shape, np.float32), rate)  # type: ignore[arg-type]


def test_A8_video_without_audio_track() -> None:
    att = Attachment.from_bytes(_video(), "mute.mp4")
    assert att.has_audio is False
    with pytest.raises(AttachmentError, match=r"mute\.mp4: has no audio track"):
        att.audio()


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_A8_video_audio_track_comes_out_through_audio(fmt: str) -> None:
    codec = "libx264" if fmt == "mp4" else "libvpx"
    att = Attachment.from_bytes(_video(fmt, codec, audio=True), f"talk.{fmt}")
    assert att.kind is Modality.VIDEO and att.has_audio is True
    out = att.audio()
    assert abs(len(out) - 16000) < 1600  # encoder priming and padding shift the edges a little
    assert _peak_hz(out, 16000) == pytest.approx(440, abs=5)


def test_open_av_streams_frames_from_bytes_and_from_path(tmp_path: Path) -> None:
    data = _video(frames=4)
    for att in (Attachment.from_bytes(data), Attachment.from_path(_write(tmp_path, "c.mp4", data))):
        with att.open_av() as container:
            frames = [f.to_ndarray(format="rgb24").shape for f in container.decode(video=0)]
        assert frames == [(48, 64, 3)] * 4
    with pytest.raises(AttachmentError, match="is an image"), Attachment.from_bytes(_image()).open_av():
        pass


# ---------------------------------------------------------------- images


def test_image_is_rgb_exif_transposed_and_cached() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    att = Attachment.from_bytes(_image("JPEG", (40, 20), exif=exif.tobytes()), "phone.jpg")
    assert (att.width, att.height) == (20, 40)
    im = att.image()
    assert im.size == (20, 40) and im.mode == "RGB"
    assert att.image() is im
    assert att.with_id("image_1").image() is im  # the copy shares the decode cache


def test_transparency_becomes_white_and_wrong_kind_is_refused() -> None:
    att = Attachment.from_bytes(_image("PNG", mode="RGBA"))
    assert att.image().getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(AttachmentError, match="not audio"):
        att.audio()
    with pytest.raises(AttachmentError, match="not an image"):
        Attachment.from_bytes(_wav16(_sine(440, 0.1, 8000), 8000)).image()


def test_from_image_encodes_png() -> None:
    att = Attachment.from_image(Image.new("CMYK", (10, 6)), "gen")
    assert (att.mime_type, att.width, att.height) == ("image/png", 10, 6)
    assert att.read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------- names (A9)


def test_A9_control_characters_and_rtl_overrides_are_escaped(tmp_path: Path) -> None:
    att = Attachment.from_bytes(_image(), "evil\0\x1b[31m\u202egnp.exe\n")
    assert att.name == "evil\\x00\\x1b[31m\\u202egnp.exe\\x0a"
    assert att.describe() == "image: image/png 32x24 (evil\\x00\\x1b[31m\\u202egnp.exe\\x0a)"
    on_disk = Attachment.from_path(_write(tmp_path, "a\u202eb\tc.png", _image()))
    assert on_disk.name == "a\\u202eb\\x09c.png"
    with pytest.raises(AttachmentError) as err:
        Attachment.from_bytes(b"text", "x\u202e\x07.png")
    assert "\u202e" not in str(err.value) and "\x07" not in str(err.value)
    assert len(Attachment.from_bytes(_image(), "n" * 10_000).name) <= 200


# ---------------------------------------------------------------- content blocks (A10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("make", [
    lambda png, wav: {"type": "image", "base64": _b64(png), "mime_type": "image/png"},
    lambda png, wav: {"type": "file", "base64": _b64(png), "mime_type": "application/octet-stream"},
    lambda png, wav: {"type": "image", "source_type": "base64", "data": _b64(png), "mime_type": "image/png"},
    lambda png, wav: {"type": "image_url", "image_url": {"url": "data:image/png;base64," + _b64(png)}},
    lambda png, wav: {"type": "image_url", "image_url": "data:image/jpeg;base64," + _b64(png)},
    lambda png, wav: {"type": "image", "url": "data:image/png;base64," + _b64(png)},
    lambda png, wav: {"type": "image", "base64": base64.encodebytes(png).decode()},  # MIME line wrapping
])
def test_image_content_blocks(make: Any) -> None:
    att = Attachment.from_content_block(make(_image(), b""))
    assert (att.kind, att.mime_type) == (Modality.IMAGE, "image/png")


def test_audio_blocks_and_kind_sniffed_despite_block_type() -> None:
    wav = _wav16(_sine(440, 0.2, 8000), 8000)
    assert Attachment.from_content_block(
        {"type": "input_audio", "input_audio": {"data": _b64(wav), "format": "wav"}}).kind is Modality.AUDIO
    lying = Attachment.from_content_block({"type": "image", "base64": _b64(wav), "mime_type": "image/png"})
    assert (lying.kind, lying.mime_type) == (Modality.AUDIO, "audio/wav")
    named = Attachment.from_content_block({"type": "audio", "base64": _b64(wav), "filename": "memo.wav"})
    assert named.name == "memo.wav"


def test_A10_urls_are_off_by_default_and_never_fetched() -> None:
    block = {"type": "image", "url": "https://user:pw@example.com/cat.png?token=SECRET"}
    with pytest.raises(AttachmentError, match="off by default") as err:
        Attachment.from_content_block(block)
    assert "SECRET" not in str(err.value) and "pw" not in str(err.value)
    assert "example.com/cat.png" in str(err.value)
    with pytest.raises(AttachmentError, match="URL fetching is not implemented"):
        Attachment.from_content_block(block, MediaLimits(allow_urls=True))
    with pytest.raises(AttachmentError, match="off by default"):
        Attachment.from_content_block({"type": "image_url", "image_url": {"url": "http://169.254.169.254/"}})
    with pytest.raises(AttachmentError, match="off by default"):
        Attachment.coerce("https://example.com/a.png")


@pytest.mark.parametrize("block", [
    {"type": "image", "base64": "not base64!!"},
    {"type": "image", "base64": 12},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}},
    {"type": "image", "file_id": "file-123"},
    {"type": "text", "text": "hi"},
    {"type": "input_audio"},
])
def test_bad_blocks_are_refused(block: dict[str, Any]) -> None:
    with pytest.raises(AttachmentError):
        Attachment.from_content_block(block)


def test_A6_base64_cap_is_checked_before_decoding() -> None:
    with pytest.raises(MediaLimitError, match="max_bytes"):
        Attachment.from_content_block({"type": "image", "base64": "A" * 400}, MediaLimits(max_bytes=100))


def test_content_block_round_trip() -> None:
    att = Attachment.from_bytes(_image(), "a.png")
    block = att.to_content_block()
    assert set(block) == {"type", "base64", "mime_type"} and block["type"] == "image"
    assert Attachment.from_content_block(block).sha256 == att.sha256


# ---------------------------------------------------------------- identity, serialisation, API


def test_same_bytes_same_hash_and_path_bytes_are_lazy(tmp_path: Path) -> None:
    data = _image()
    on_disk = Attachment.from_path(_write(tmp_path, "a.png", data))
    assert on_disk.sha256 == Attachment.from_bytes(data).sha256 != Attachment.from_bytes(_image("GIF")).sha256
    assert on_disk.size_bytes == len(data) and on_disk.read_bytes() == data
    assert Attachment.from_bytes(data, "x") == Attachment.from_bytes(data, "x")  # caches are not identity
    (tmp_path / "a.png").write_bytes(_image("PNG", (5, 5)))
    with pytest.raises(AttachmentError, match="changed on disk"):
        on_disk.read_bytes()


def test_with_id_copies_and_describe() -> None:
    img = Attachment.from_bytes(_image(), "photo.png")
    tagged = img.with_id("image_1")
    assert img.id is None and tagged.id == "image_1" and tagged.sha256 == img.sha256
    assert img.describe() == "image: image/png 32x24 (photo.png)"
    assert tagged.describe() == "image_1: image/png 32x24 (photo.png)"
    wav = Attachment.from_bytes(_wav16(_sine(440, 5.2, 8000), 8000), "note.wav").with_id("audio_1")
    assert wav.describe() == "audio_1: audio/wav 5.2 s (note.wav)"
    clip = Attachment.from_bytes(_video(audio=True), "clip.mp4").with_id("video_1")
    assert clip.describe() == "video_1: video/mp4 1.0 s 64x48 with audio (clip.mp4)"
    assert Attachment.from_bytes(_video()).describe().endswith("64x48 without audio (<bytes>)")


def test_json_carries_no_bytes_and_path_attachments_survive_it(tmp_path: Path) -> None:
    data = _noise_image("PNG")
    in_memory = Attachment.from_bytes(data, "n.png")
    dumped = in_memory.model_dump_json()
    assert len(dumped) < 600 and _b64(data)[:40] not in dumped
    on_disk = Attachment.from_path(_write(tmp_path, "n.png", data))
    back = Attachment.model_validate_json(on_disk.model_dump_json())
    assert back.read_bytes() == data and back.image().size == (64, 48)
    with pytest.raises(AttachmentError, match="no bytes"):
        Attachment.model_validate_json(dumped).read_bytes()
    with pytest.raises(ValidationError):
        Attachment(kind=Modality.TEXT, mime_type="text/plain", name="t", size_bytes=1, sha256="0")


def test_save_writes_the_same_bytes(tmp_path: Path) -> None:
    att = Attachment.from_bytes(_image(), "a.png")
    assert att.save(tmp_path / "copy.png").read_bytes() == att.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.png"]  # no temp file left behind
    with pytest.raises(AttachmentError, match="cannot save"):
        att.save(tmp_path / "missing-dir" / "x.png")


def test_coerce_dispatches_on_type(tmp_path: Path) -> None:
    png = _image()
    path = _write(tmp_path, "c.png", png)
    wav = _wav16(_sine(440, 0.1, 8000), 8000)
    att = Attachment.from_bytes(png)
    assert Attachment.coerce(att) is att
    assert Attachment.coerce(str(path)).path == path.resolve()
    assert Attachment.coerce(path).name == "c.png"
    assert Attachment.coerce(png).kind is Modality.IMAGE
    assert Attachment.coerce(Image.new("RGB", (3, 3))).width == 3
    assert Attachment.coerce((_sine(440, 0.1, 8000), 8000)).kind is Modality.AUDIO
    assert Attachment.coerce({"type": "audio", "base64": _b64(wav)}).kind is Modality.AUDIO
    assert Attachment.coerce("data:image/png;base64," + _b64(png)).kind is Modality.IMAGE
    with pytest.raises(AttachmentError, match="cannot be attached"):
        Attachment.coerce(42)
    with pytest.raises(AttachmentError, match="outside"):
        Attachment.coerce(str(path), MediaLimits(allowed_roots=(tmp_path / "elsewhere",)))


def test_bytes_probed_once_are_not_decoded_again_unless_the_caps_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    import polymodal.media._attachment as media  # where Attachment looks _probe up

    probes: list[str] = []
    real = media._probe

    def counted(opener: Any, head: bytes, source: str, limits: MediaLimits) -> Any:
        probes.append(source)
        return real(opener, head, source, limits)

    monkeypatch.setattr(media, "_probe", counted)
    rng = np.random.default_rng(7)  # bytes no other test attached, so the process-wide cache is cold
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    first = Attachment.from_bytes(data, "turn1.png")
    again = Attachment.from_bytes(data, "turn2.png")  # a stateless client sends its history every turn
    assert probes == ["turn1.png"]
    assert (again.kind, again.mime_type, again.width, again.height) == (first.kind, "image/png", 60, 40)
    assert again.name == "turn2.png" and again.sha256 == first.sha256
    with pytest.raises(MediaLimitError, match=r"turn3\.png: is 60x40 = 2,400 pixels, over the 1,000 pixel cap"):
        Attachment.from_bytes(data, "turn3.png", MediaLimits(max_pixels=1000))  # stricter caps: checked again
    broken = data[: len(data) // 2]
    for name in ("a.png", "b.png"):  # a failure is not kept: each attempt fails, naming its own file
        with pytest.raises(AttachmentError, match=name):
            Attachment.from_bytes(broken, name)
    assert probes == ["turn1.png", "turn3.png", "a.png", "b.png"]
