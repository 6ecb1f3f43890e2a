"""Every container docs/errors.md lists is recognised from its bytes and decodes (RELIABILITY A3).

Each file is encoded here with Pillow or PyAV and handed over under a name that says nothing
(``upload.bin``), so only the magic bytes can tell its kind. A container that stops being
recognised (a RIFF/AVI, a big-endian TIFF, a bare ADTS stream) fails by name.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from polymodal import Attachment, AttachmentError, Modality
from polymodal.media._sniffing import _looks_like, _sniff

RATE = 16000


def image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def audio_bytes(fmt: str, codec: str, rate: int = RATE) -> bytes:
    samples = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def video_bytes(fmt: str, codec: str) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def bare_mp3() -> bytes:
    data = audio_bytes("mp3", "libmp3lame")
    return data[10 + sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10])):]  # drop the ID3 tag


CONTAINERS = {  # docs/errors.md's list, in its order
    "png": (lambda: image_bytes("PNG"), Modality.IMAGE, "image/png"),
    "jpeg": (lambda: image_bytes("JPEG"), Modality.IMAGE, "image/jpeg"),
    "gif": (lambda: image_bytes("GIF"), Modality.IMAGE, "image/gif"),
    "webp": (lambda: image_bytes("WEBP"), Modality.IMAGE, "image/webp"),
    "bmp": (lambda: image_bytes("BMP"), Modality.IMAGE, "image/bmp"),
    "tiff": (lambda: image_bytes("TIFF"), Modality.IMAGE, "image/tiff"),
    "avif": (lambda: image_bytes("AVIF"), Modality.IMAGE, "image/avif"),
    "wav": (lambda: audio_bytes("wav", "pcm_s16le"), Modality.AUDIO, "audio/wav"),
    "flac": (lambda: audio_bytes("flac", "flac"), Modality.AUDIO, "audio/flac"),
    "ogg": (lambda: audio_bytes("ogg", "libopus", 48000), Modality.AUDIO, "audio/ogg"),
    "mp3": (lambda: audio_bytes("mp3", "libmp3lame"), Modality.AUDIO, "audio/mpeg"),
    "mp3-no-id3": (bare_mp3, Modality.AUDIO, "audio/mpeg"),
    "aac-adts": (lambda: audio_bytes("adts", "aac"), Modality.AUDIO, "audio/aac"),
    "m4a": (lambda: audio_bytes("ipod", "aac"), Modality.AUDIO, "audio/mp4"),
    "mp4": (lambda: video_bytes("mp4", "libx264"), Modality.VIDEO, "video/mp4"),
    "mov": (lambda: video_bytes("mov", "libx264"), Modality.VIDEO, "video/quicktime"),
    "webm": (lambda: video_bytes("webm", "libvpx"), Modality.VIDEO, "video/webm"),
    "mkv": (lambda: video_bytes("matroska", "libx264"), Modality.VIDEO, "video/x-matroska"),
    "avi": (lambda: video_bytes("avi", "mpeg4"), Modality.VIDEO, "video/x-msvideo"),
}


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_every_listed_container_is_sniffed_and_decodes(name):
    make, kind, mime = CONTAINERS[name]
    attachment = Attachment.from_bytes(make(), "upload.bin")
    assert (attachment.kind, attachment.mime_type) == (kind, mime)
    if kind is Modality.IMAGE:
        assert attachment.image().size == (32, 24)
    elif kind is Modality.AUDIO:
        assert attachment.duration == pytest.approx(0.5, abs=0.1)
        assert attachment.audio(RATE).size == pytest.approx(RATE // 2, abs=RATE // 10)
    else:
        assert (attachment.width, attachment.height) == (64, 48)
        assert attachment.duration == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize(("head", "subtype"), [
    (b"GIF87a", "gif"), (b"GIF89a", "gif"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"), (b"RF64\x00\x00\x00\x00WAVEds64", "wav"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"), (b"RIFF\x00\x00\x00\x00AVI LIST", "x-msvideo"),
    (b"\x00\x00\x00\x18ftypqt  ", "quicktime"), (b"\x00\x00\x00\x18ftypisom", "mp4"),
    (b"\x00\x00\x00\x18ftypavif", "avif"), (b"\x00\x00\x00\x18ftypavis", "avif"),
    (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm", "webm"),
    (b"\x1a\x45\xdf\xa3\x9fB\x82\x88matroska", "x-matroska"),
    (b"\xff\xfb\x90\x00", "mpeg"), (b"\xff\xf1\x50\x80", "aac"), (b"ID3\x04\x00", "mpeg"),
    (b"BM" + bytes(12) + (40).to_bytes(4, "little"), "bmp"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_magic_numbers(head, subtype):
    assert _sniff(head + bytes(32)) == subtype


@pytest.mark.parametrize("head", [
    b"RIFF\x00\x00\x00\x00XXXX", b"\x00\x00\x00\x18ftypheic", b"BM is not a bitmap here", b"\xff\xe0\x00\x00",
    b"GIF90a", b"II+\x00",
], ids=["riff-unknown", "heic", "bm-text", "frame-sync-reserved", "gif-unknown", "bigtiff"])
def test_near_misses_are_not_recognised(head):
    assert _sniff(head + bytes(32)) is None


def test_the_extension_never_decides(tmp_path):
    avi = tmp_path / "clip.mp4"
    avi.write_bytes(video_bytes("avi", "mpeg4"))
    assert Attachment.from_path(avi).mime_type == "video/x-msvideo"
    fake = tmp_path / "clip.avi"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00AVI " + b"garbage" * 20)
    with pytest.raises(AttachmentError, match=r"clip\.avi"):
        Attachment.from_path(fake)


@pytest.mark.parametrize(("head", "looks"), [
    (b"\x7fELF\x02\x01\x01" + bytes(9), "an ELF executable"), (b"MZ\x90\x00\x03", "a Windows executable"),
    (b"%PDF-1.7\n", "a PDF document"), (b"PK\x03\x04\x14\x00", "a ZIP archive"),
    (b"  \n<!DOCTYPE html><html>", "HTML"), (b"<HTML><BODY>hi", "HTML"),
    (b'<svg xmlns="http://www.w3.org/2000/svg">', "SVG (not supported)"), (b'<?xml version="1.0"?>', "XML"),
    *[(b"\x00\x00\x00\x18ftyp" + brand + bytes(8), "a HEIC image (not supported: convert it to JPEG or PNG)")
      for brand in (b"heic", b"heix", b"mif1", b"msf1")],
    (b"\x00\x00\x00\x18abcdheic" + bytes(8), "unrecognised binary data"),  # a brand without "ftyp" is not HEIC
    (b"plain words\tand tabs\r\nand lines\f", "text"),
    (("\u00e9t\u00e9 " * 1000).encode()[:4093], "text"),  # a two-byte character cut by the end of the head
    (b"abc" + "\U0001f600".encode()[:3], "text"),  # three bytes of a four-byte one: still the head's end
    (b"abc\xffabc", "unrecognised binary data"),  # a bad byte four from the end is not a cut character
    (b"abc\xff\xfe\x00 def", "unrecognised binary data"), (bytes(range(256)), "unrecognised binary data"),
], ids=["elf", "exe", "pdf", "zip", "html-indented", "html-upper", "svg", "xml", "heic", "heix", "mif1", "msf1",
        "brand-without-ftyp", "text", "utf8-cut", "utf8-cut-3-of-4", "bad-byte-before-the-end", "bad-utf8",
        "binary"])
def test_a_refusal_says_what_the_file_looks_like(head, looks):
    assert _looks_like(head) == looks
    with pytest.raises(AttachmentError, match="not a supported image, audio or video file"):
        Attachment.from_bytes(head, "upload.jpg")
