"""The mood timeline's bookkeeping: the window grid, merging equal neighbours, and the changes in words."""

from __future__ import annotations

import itertools

import pytest

from polymodal.tools.builtin.emotion.mood import MoodWindow, WindowGrid, clock, describe_changes, merge_windows

CALM = {"calm": 0.8, "angry": 0.2}
ANGRY = {"calm": 0.3, "angry": 0.7}
ANGRIER = {"calm": 0.1, "angry": 0.9}


def window(i: int, fused: dict | None, voice: dict | None = None, **faces: dict) -> MoodWindow:
    return MoodWindow(start=10.0 * i, end=10.0 * (i + 1), fused=fused, voice=voice,
                      faces={name.replace("_", " "): dist for name, dist in faces.items()})


def spans(timeline, who):
    return [(s.start, s.end, s.label, s.windows) for s in timeline if s.who == who]


@pytest.mark.parametrize(("duration", "planned", "last"), [
    (None, 1, (0.0, 8.0)), (3.0, 1, (0.0, 3.0)), (61.0, 8, (56.0, 61.0)), (58.0, 7, (48.0, 58.0)),
    (16.0, 2, (8.0, 16.0)),
])
def test_the_grid_gives_the_remainder_to_the_last_window(duration, planned, last):
    grid = WindowGrid(window=8.0, duration=duration)
    assert grid.planned == planned and grid.bounds(planned - 1) == last
    assert grid.bounds(planned) == (last[1], last[1] + 8.0)  # a file longer than it said: nominal windows


def test_sample_times_are_centred_in_each_window():
    times = list(itertools.islice(WindowGrid(window=4.0, duration=9.0).sample_times(2), 6))
    assert times == [1.0, 3.0, 5.25, 7.75, 10.0, 12.0]  # the second window, 4..9, takes the remainder


def test_equal_neighbours_merge_and_average_by_duration():
    windows = [window(0, CALM, CALM), window(1, CALM, ANGRY), window(2, ANGRY, ANGRY), window(3, ANGRIER, ANGRY)]
    windows[3].end = 50.0  # a longer last window weighs more
    timeline = merge_windows(windows, voice=True, faces=False)
    assert spans(timeline, "fused") == [(0.0, 20.0, "calm", 2), (20.0, 50.0, "angry", 2)]
    assert spans(timeline, "voice") == [(0.0, 10.0, "calm", 1), (10.0, 50.0, "angry", 3)]
    angry = next(s for s in timeline if s.who == "fused" and s.label == "angry")
    expected = {"angry": (0.7 * 10 + 0.9 * 20) / 30, "calm": (0.3 * 10 + 0.1 * 20) / 30}
    assert angry.probabilities == pytest.approx(expected)
    assert spans(timeline, "faces") == []  # no pictures: no face rows at all


def test_faces_that_leave_and_return_and_windows_without_anyone():
    windows = [window(0, CALM, face_1=CALM), window(1, CALM, face_1=CALM, face_2=ANGRY), window(2, None),
               window(3, CALM, face_1=CALM)]
    timeline = merge_windows(windows, voice=True, faces=True)
    assert spans(timeline, "face 1") == [(0.0, 20.0, "calm", 2), (30.0, 40.0, "calm", 1)]
    assert spans(timeline, "face 2") == [(10.0, 20.0, "angry", 1)]
    assert spans(timeline, "faces") == [(20.0, 30.0, "no face", 1)]
    assert spans(timeline, "voice") == [(0.0, 40.0, "no voice", 4)]
    assert spans(timeline, "fused") == [(0.0, 20.0, "calm", 2), (20.0, 30.0, "no face or voice", 1),
                                        (30.0, 40.0, "calm", 1)]
    assert [(s.start, s.who) for s in timeline][:4] == [(0.0, "fused"), (0.0, "voice"), (0.0, "face 1"),
                                                         (10.0, "face 2")]  # by time, then who
    assert not next(s for s in timeline if s.who == "faces").known


def test_changes_in_words():
    windows = [window(i, dist) for i, dist in enumerate([CALM] * 19 + [ANGRY] * 3 + [CALM])]
    timeline = merge_windows(windows, voice=False, faces=False)
    assert describe_changes(timeline) == "calm until 03:10, then angry until 03:40, then calm"
    assert describe_changes(merge_windows(windows[:2], voice=False, faces=False)) == "calm throughout"
    assert describe_changes(timeline, "face 7") == ""


def test_clock():
    assert [clock(s) for s in (0, 59.9, 190, 3599, 3790)] == ["00:00", "00:59", "03:10", "59:59", "1:03:10"]
