"""Log-spaced integer time grids: the one helper behind every "record at log-spaced times" in the analyses."""

from __future__ import annotations

import numpy as np

from rds._checks import check_memory, integer

__all__ = ["log_times"]


def log_times(stop: int, num: int = 200, *, zero: bool = False) -> np.ndarray:
    """Distinct integers log-spaced in [1, ``stop``], at most ``num`` of them, always ending at ``stop``.

    The points are ``unique(round(geomspace(1, stop, num)))`` (rounding merges the crowded small ones, so there may
    be fewer than ``num``); ``num = 1`` gives ``[stop]``.

    Parameters
    ----------
    stop : int
        Last time, ≥ 1 (steps or durations).
    num : int
        Wanted number of points, ≥ 1.
    zero : bool, keyword-only
        Prepend t = 0 (the initial state).

    Returns
    -------
    ndarray of int64, increasing

    Examples
    --------
    >>> from rds.timegrid import log_times
    >>> log_times(1000, 4).tolist(), log_times(10, 3, zero=True).tolist()
    ([1, 10, 100, 1000], [0, 1, 3, 10])
    """
    stop = integer(stop, "stop", 1)
    num = integer(num, "num", 1)
    if num == 1:
        t = np.array([stop], dtype=np.int64)
    elif num > 2 * stop * np.log(stop) + 2:  # gaps < 1/2 between the points: every integer, without allocating num
        t = np.arange(1, stop + 1, dtype=np.int64)
    else:
        check_memory(24 * num, f"num = {num} log-spaced times", "ask for fewer points")
        t = np.unique(np.round(np.geomspace(1, stop, num)).astype(np.int64))
        t = t[(t >= 1) & (t <= stop)]
        if t.size == 0 or t[-1] != stop:
            t = np.append(t, np.int64(stop))
    return np.concatenate([np.zeros(1, dtype=np.int64), t]) if zero else t
