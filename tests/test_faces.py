"""Face detection (OpenCV's Haar cascade) on a real face, cropping, and tracking by position."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from support.face_media import Placement, Shot, astronaut_head, call_frames

from polymodal import Attachment, MissingDependencyError
from polymodal.tools import EmotionRecognizer, FaceBox, HaarFaceDetector
from polymodal.tools.builtin.emotion.faces import FaceTracker, crop_face

SIZE = (320, 240)


@pytest.fixture(scope="module")
def detector() -> HaarFaceDetector:
    return HaarFaceDetector()


def inside(box: FaceBox, left: int, top: int, head: np.ndarray) -> bool:
    """The box's centre lies on the pasted head."""
    cx, cy = box.centre
    return left <= cx <= left + head.shape[1] and top <= cy <= top + head.shape[0]


@pytest.mark.parametrize("tint", ["none", "bgr"])
def test_the_face_is_found_where_it_was_pasted_as_it_moves(detector, tint):
    head = astronaut_head(110, tint)
    frames = list(call_frames([Shot(1.0, (Placement(head, (0, 20), (200, 120)),))], SIZE, fps=5))
    for i, frame in enumerate(frames):
        left, top = round(200 * i / 4), round(20 + 100 * i / 4)
        boxes = detector.detect(frame)
        assert len(boxes) == 1 and inside(boxes[0], left, top, head), (i, boxes)


def test_a_room_without_anyone_has_no_face(detector):
    frame = next(call_frames([Shot(0.2)], SIZE, fps=5))
    assert detector.detect(frame) == []


def test_a_big_frame_is_scanned_shrunk_and_boxes_come_back_in_its_pixels():
    head = astronaut_head(330)
    frame = next(call_frames([Shot(0.2, (Placement(head, (900, 300)),))], (1920, 1080), fps=5))
    small = HaarFaceDetector(scan_side=640).detect(frame)
    assert len(small) == 1 and inside(small[0], 900, 300, head) and small[0].w > 100


def test_a_crop_keeps_a_margin_and_stays_inside_the_picture():
    image = Image.new("RGB", (100, 80))
    assert crop_face(image, FaceBox(40, 30, 20, 20), margin=0.25).size == (30, 30)
    assert crop_face(image, FaceBox(0, 0, 20, 20), margin=0.5).size == (30, 30)  # clipped at the corner


def test_the_tracker_follows_a_moving_face_and_keeps_two_apart():
    tracker = FaceTracker(max_jump=1.5, max_gap=5.0)
    assert tracker.update(0.0, [FaceBox(10, 10, 50, 50), FaceBox(200, 10, 50, 50)]) == ["face 1", "face 2"]
    # both move a little, and come back in the other order: names follow positions, not list order
    assert tracker.update(1.0, [FaceBox(230, 20, 50, 50), FaceBox(40, 20, 50, 50)]) == ["face 2", "face 1"]
    assert tracker.update(2.0, [FaceBox(70, 20, 52, 52)]) == ["face 1"]
    assert tracker.update(3.0, [FaceBox(500, 300, 50, 50)]) == ["face 3"]  # far from everyone: someone new
    assert tracker.update(20.0, [FaceBox(72, 20, 50, 50)]) == ["face 4"]  # gone longer than max_gap: new
    assert tracker.count == 4


def test_missing_opencv_names_the_faces_extra(monkeypatch, media):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` meets when the extra is not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'polymodal\[faces\]'"):
        HaarFaceDetector().detect(np.zeros((10, 10, 3), np.uint8))
    recognizer = EmotionRecognizer(model="/no/such/voice", face_model="/no/such/face")
    with pytest.raises(MissingDependencyError, match="faces"):  # said before any model loads
        recognizer.execute(image=Attachment.from_path(media.png()))


def test_a_loaded_detector_travels_to_a_worker_process_and_still_finds_the_face(detector):
    """A tool on the process or Ray host is pickled after its detector has loaded on some thread."""
    import pickle

    from polymodal.runtime.hosts.process import _tool_blob

    detector.load()
    copy = pickle.loads(pickle.dumps(detector))
    head = astronaut_head(110)
    frame = next(call_frames([Shot(0.2, (Placement(head, (100, 60)),))], SIZE, fps=5))
    assert [box.centre for box in copy.detect(frame)] == [box.centre for box in detector.detect(frame)] != []
    tool = EmotionRecognizer(model="/never/loaded", face_detector=detector)
    assert pickle.loads(_tool_blob(tool)).face_detector.scan_side == detector.scan_side
