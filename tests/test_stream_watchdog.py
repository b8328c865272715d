"""`watch_stalls`: a stream that another library reads gets the stall window of downloads.

Sources here sleep between items: within a 1 s window every item arrives in order; past it
the read ends with the one-line `DownloadError` of a stalled download; a source's own error
comes through unchanged; the source thread never outlives the stream (except while a stuck
source sleeps, as a daemon); and the same holds in a DataLoader worker process.
"""

from __future__ import annotations

import threading
import time

import pytest
from torch.utils.data import DataLoader, IterableDataset

from mlpmixer.errors import DownloadError
from mlpmixer.stream_watchdog import watch_stalls

WINDOW_S = 1.0


def _slow(count: int, every_s: float, stall_at: int | None = None, stall_s: float = 0.0):
    """0..count-1, one every ``every_s`` seconds; ``stall_s`` before item ``stall_at``."""
    for i in range(count):
        time.sleep(stall_s if i == stall_at else every_s)
        yield i


def _watch_threads(where: str) -> list[threading.Thread]:
    """The source threads of streams named ``where`` (each test names its own)."""
    return [t for t in threading.enumerate() if t.name == f"stall watch: {where}"]


def _no_watch_thread_within(where: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _watch_threads(where) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _watch_threads(where)


def test_a_slow_source_within_the_window_gives_every_item_in_order():
    items = list(watch_stalls(_slow(6, every_s=0.3), "slow", window=WINDOW_S))
    assert items == list(range(6))
    assert not _watch_threads("slow")  # joined at the end, not left behind


def test_a_stall_ends_the_read_within_the_window_with_one_line():
    start = time.monotonic()
    got = []
    with pytest.raises(DownloadError) as caught:
        for item in watch_stalls(_slow(4, 0.0, stall_at=2, stall_s=2.5), "hf:x: split 'train'",
                                 window=WINDOW_S):  # fmt: skip
            got.append(item)
    seconds = time.monotonic() - start
    assert got == [0, 1] and WINDOW_S <= seconds < 2.0, seconds  # before the source returns
    assert str(caught.value) == (
        "hf:x: split 'train': the download stalled (no record in the last 1 s, 2 in all); "
        "try again later ($MLPMIXER_DOWNLOAD_STALL_S sets the window)"
    )
    assert caught.value.exit_code == 1 and "\n" not in str(caught.value)
    # the daemon ends once the stuck source returns
    assert _no_watch_thread_within("hf:x: split 'train'", 4.0)


def test_the_window_is_the_download_stall_setting(monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_STALL_S", "0.5")
    with pytest.raises(DownloadError, match=r"no record in the last 0\.5 s, 0 in all"):
        next(watch_stalls(_slow(1, every_s=2.0), "setting"))


class SourceBroke(RuntimeError):
    pass


def test_an_error_of_the_source_comes_through_unchanged():
    error = SourceBroke("the reader failed at record 2")

    def source():
        yield 0
        yield 1
        raise error

    got = []
    with pytest.raises(SourceBroke) as caught:
        for item in watch_stalls(source(), "broken", window=WINDOW_S):
            got.append(item)
    assert caught.value is error and got == [0, 1]
    assert not _watch_threads("broken")


def test_a_consumer_that_stops_early_ends_the_source_thread():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()  # the source's own cleanup runs when the consumer goes away

    stream = watch_stalls(endless(), "endless", window=WINDOW_S)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert _no_watch_thread_within("endless", 2.0) and closed.is_set()


class _Watched(IterableDataset):
    """Items of a slow source, watched inside the DataLoader worker that reads them."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s

    def __iter__(self):
        source = _slow(5, every_s=0.05, stall_at=3, stall_s=self.stall_s)
        return watch_stalls(source, "worker stream", window=WINDOW_S)


def test_in_a_dataloader_worker_process():
    loader = DataLoader(_Watched(stall_s=0.3), batch_size=None, num_workers=1)
    assert [int(x) for x in loader] == [0, 1, 2, 3, 4]
    stalled = DataLoader(_Watched(stall_s=3.0), batch_size=None, num_workers=1)
    got = []
    with pytest.raises(
        DownloadError, match=r"worker stream: the download stalled \(no record"
    ) as caught:
        for x in stalled:
            got.append(int(x))
    assert got == [0, 1, 2] and "in DataLoader worker process 0" in str(caught.value)
