"""Attachments: untrusted media files turned into typed, validated, lazily decoded objects.

Every file a user hands us is hostile until proven otherwise (RELIABILITY.md, A1-A10). An
:class:`Attachment` is only built after its path passed the allowed-roots check, its kind was
sniffed from the bytes (never the extension), its size, pixel count and duration were checked
against :class:`MediaLimits`, and a first frame decoded. Tools then get decoded content on demand
(``image()``, ``audio()``, ``open_av()``), decoded once and cached, while the planner only ever
sees ``describe()``: ``image_1: image/png 640x480 (photo.png)``.

Every Pillow or PyAV failure surfaces as :class:`AttachmentError` (or :class:`MediaLimitError`
for caps) naming the file, so no decoder traceback reaches an answer.

The package's modules are internal (their names start with ``_``); this module is the public face:

- ``_kinds``: :class:`Modality`, :class:`MediaLimits` and the helpers the others share;
- ``_sniffing``: a file's kind from its first bytes;
- ``_probing``: forced-decoder opening, caps, first-frame decoding;
- ``_sources``: base64, data: URLs and chat content blocks;
- ``_files``: safe opening of files on disk (allowed roots, no links, no FIFOs, capped hashing);
- ``_attachment``: the :class:`Attachment` value itself.
"""

from __future__ import annotations

from polymodal.media._attachment import Attachment
from polymodal.media._kinds import DEFAULT_LIMITS, MediaLimits, Modality

__all__ = ["DEFAULT_LIMITS", "Attachment", "MediaLimits", "Modality"]
