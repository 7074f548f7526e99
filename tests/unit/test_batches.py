"""The compiled per-batch helpers of the capture runtime (issue 15) against plain Python."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hanlab.capture.reader import fill_batch
from hanlab.errors import CaptureFormatError
from hanlab.frames import Band, Frame, batch_counts, by_band


def _frame(i: int, band: Band, fcs_ok: bool | None = True, size: int = 3) -> Frame:
    page, channel = (0, 11) if band is Band.GHZ_2_4 else (28, 3)
    return Frame(i, "s", band, page, channel, bytes(size), fcs_ok)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Band)), st.sampled_from([True, False, None]),
                          st.integers(0, 9)), max_size=30))
def test_by_band_and_batch_counts_agree_with_plain_python(
        specs: list[tuple[Band, bool | None, int]]) -> None:
    batch = [_frame(i, band, fcs_ok, size) for i, (band, fcs_ok, size) in enumerate(specs)]
    expected = [(b, [f for f in batch if f.band is b]) for b in Band]
    assert by_band(batch) == [(b, part) for b, part in expected if part]
    if batch and all(f.band is batch[0].band for f in batch):
        assert by_band(batch)[0][1] is batch  # one band: the batch itself, no copy
    assert batch_counts(batch) == (sum(len(f.psdu) for f in batch),
                                   sum(1 for f in batch if f.fcs_ok is False))


def test_fill_batch_stops_at_size_and_keeps_what_came_before_an_error() -> None:
    frames = iter([_frame(i, Band.GHZ_2_4) for i in range(5)])
    batch: list[Frame] = []
    fill_batch(frames, batch, 2)
    assert [f.ts_ns for f in batch] == [0, 1]
    fill_batch(frames, batch, 2)  # already full: nothing taken
    assert len(batch) == 2 and next(frames).ts_ns == 2
    rest: list[Frame] = []
    fill_batch(frames, rest, 10)
    assert [f.ts_ns for f in rest] == [3, 4]

    def damaged() -> Iterator[Frame]:
        yield _frame(7, Band.SUB_GHZ)
        raise CaptureFormatError("x.pcapng", 96, "truncated block")

    kept: list[Frame] = []
    with pytest.raises(CaptureFormatError, match="96"):
        fill_batch(damaged(), kept, 10)
    assert [f.ts_ns for f in kept] == [7]
