"""Trajectory data larger than memory: passes in chunks, frames by index, gathered batches.

A ``fit`` may be given memory-mapped trajectories (``np.load(path, mmap_mode="r")``) that
together exceed the memory of the process. Nothing here copies them whole:

- :func:`row_chunks` cuts a trajectory into blocks of at most :func:`chunk_rows` rows, for
  the passes that validate the data and sum their statistics;
- the trajectories of a fit form one sequence of rows: frame ``r`` of trajectory ``i`` is the
  global row ``offsets[i] + r``. :class:`LaggedPairs` holds time-lagged pairs as the rows
  where they start, with the reversed pairs of a reversible fit as a flag;
- :class:`Frames` transforms (scales) rows of the trajectories on demand, and :class:`Rows`
  is one input of a training set, whose batches the loader gathers step by step.

Small data in memory are copied into training arrays once, as before (see
:func:`gathers_batches`): both give the same batches.
"""

import mmap

import numpy as np

# Rows per chunk of a pass over a trajectory; fewer for wide data (see chunk_rows).
CHUNK_ROWS = 65_536
# Elements per chunk at most: 16 MiB of float64 temporaries.
_CHUNK_ELEMENTS = 2**21
# Trajectory data in memory up to this many bytes (all arrays of a fit together) are copied
# into training arrays once; larger data, and memory maps of any size, are gathered per batch.
IN_MEMORY_BYTES = 2**28


def chunk_rows(n_columns):
    """Rows per chunk of a pass over data with ``n_columns`` columns."""
    return max(1, min(CHUNK_ROWS, _CHUNK_ELEMENTS // max(1, int(n_columns))))


def row_chunks(array):
    """Consecutive blocks ``(start, array[start:stop])`` of at most ``chunk_rows`` rows."""
    step = chunk_rows(array.shape[1] if array.ndim > 1 else 1)
    for start in range(0, len(array), step):
        yield start, array[start : start + step]


def is_memory_mapped(array):
    """Whether ``array`` is, or views, a memory map (``np.memmap`` or ``mmap.mmap``)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def gathers_batches(*groups):
    """Whether a fit on these lists of arrays gathers its batches rather than copying them.

    True when any array is memory-mapped or all of them together hold more than
    ``IN_MEMORY_BYTES``.
    """
    arrays = [a for group in groups for a in group]
    return any(map(is_memory_mapped, arrays)) or sum(a.nbytes for a in arrays) > IN_MEMORY_BYTES


def frame_offsets(trajs):
    """Global row of the first frame of each trajectory, and the total as a last entry."""
    return np.concatenate([[0], np.cumsum([len(t) for t in trajs], dtype=np.int64)])


def lagged_chunks(trajs, lag_time):
    """The pairs ``(x_t, x_{t+lag_time})`` of ``trajs`` in pieces of at most ``chunk_rows``.

    Each piece is a pair of new arrays ``(X0, Xt)`` that may join the ends of several
    trajectories, in order; no pair crosses a boundary. Trajectories with at most
    ``lag_time`` frames give nothing. Data of up to ``chunk_rows`` pairs come as one piece,
    the arrays that ``lagged_pairs`` would stack.
    """
    step = chunk_rows(trajs[0].shape[1])
    pending, size = [], 0
    for t in trajs:
        start, n_pairs = 0, len(t) - lag_time
        while start < n_pairs:
            stop = min(n_pairs, start + step - size)
            pending.append((t, start, stop))
            size += stop - start
            start = stop
            if size == step:
                yield _join(pending, lag_time)
                pending, size = [], 0
    if pending:
        yield _join(pending, lag_time)


def _join(pieces, lag_time):
    return (
        np.concatenate([t[a:b] for t, a, b in pieces]),
        np.concatenate([t[a + lag_time : b + lag_time] for t, a, b in pieces]),
    )


def _indices(index, n):
    """``index`` (an int, slice, int array or tensor) as an int64 array of positions."""
    if isinstance(index, slice):
        return np.arange(*index.indices(n))
    if hasattr(index, "numpy"):
        index = index.numpy()
    return np.asarray(index, dtype=np.int64)


class LaggedPairs:
    """Time-lagged pairs as row indices: pair ``k`` runs from ``starts[k]`` to ``starts[k] + lag``.

    ``starts`` are global rows (see the module docstring). With ``both_directions`` the set
    is followed by the same pairs reversed in time, ``(x_{t+lag}, x_t)``, as a flag rather
    than a copy; ``repeats`` tiles the whole set. Position ``k`` of the set then holds the pair
    that stacking the pairs, their reverses and the tiles in that order would put there.
    """

    def __init__(self, starts, lag_time, *, both_directions=False, repeats=1):
        self.starts = np.asarray(starts, dtype=np.int64)
        self.lag_time = int(lag_time)
        self.both_directions = bool(both_directions)
        self.repeats = int(repeats)
        self._n_set = len(self.starts) * (2 if self.both_directions else 1)

    def __len__(self):
        return self._n_set * self.repeats

    def tiled(self, repeats):
        """The set repeated ``repeats`` times over."""
        return LaggedPairs(
            self.starts,
            self.lag_time,
            both_directions=self.both_directions,
            repeats=self.repeats * repeats,
        )

    def rows(self, index, end):
        """Global rows of the pairs at ``index``: their first frames (``end=0``) or last (1)."""
        k = _indices(index, len(self))
        if self.repeats > 1:
            k = k % self._n_set
        n = len(self.starts)
        backward = (k >= n).astype(np.int64) if self.both_directions else 0
        # A reversed pair starts where its forward pair ends, and ends where it starts.
        first = self.starts[k - n * backward] + self.lag_time * backward
        return first if end == 0 else first + self.lag_time * (1 - 2 * backward)


class Frames:
    """Rows of a list of trajectories, addressed by global row and transformed on demand.

    ``transform`` maps an array of frames ``(n, n_features)`` to the network's float32 input
    ``(n, width)``, row by row (a per-feature scaling, or whitening by a matrix).
    """

    def __init__(self, trajs, transform):
        self.trajs = list(trajs)
        self.transform = transform
        self.offsets = frame_offsets(self.trajs)
        self._dtype = np.result_type(*[t.dtype for t in self.trajs])
        self._whole = None
        self._width = None

    @property
    def width(self):
        """Columns of the transformed frames."""
        if self._width is None:
            self._width = self.transform(self.trajs[0][:1]).shape[1]
        return self._width

    def take(self, rows):
        """The transformed frames at global ``rows``, in that order.

        They are read in sorted order (memory maps are read forwards) into one block, which
        is transformed at once.
        """
        rows = np.asarray(rows, dtype=np.int64)
        ascending = bool(np.all(rows[1:] >= rows[:-1]))
        order = None if ascending else np.argsort(rows, kind="stable")
        ordered = rows if ascending else rows[order]
        raw = np.empty((len(rows), self.trajs[0].shape[1]), dtype=self._dtype)
        bounds = np.searchsorted(ordered, self.offsets)
        for i in np.flatnonzero(np.diff(bounds)):
            block = slice(bounds[i], bounds[i + 1])
            local = ordered[block] - self.offsets[i]
            if self.trajs[i].dtype == raw.dtype:
                np.take(self.trajs[i], local, axis=0, out=raw[block])
            else:
                raw[block] = self.trajs[i][local]
        transformed = self.transform(raw)
        if ascending:
            return transformed
        out = np.empty_like(transformed)
        out[order] = transformed
        return out

    def whole(self):
        """Every trajectory transformed as a whole, stacked (computed once)."""
        if self._whole is None:
            self._whole = np.concatenate([self.transform(t) for t in self.trajs])
        return self._whole


class Rows:
    """One input of a training set whose rows are gathered from ``frames`` when indexed.

    ``index`` says which global row each position holds: an int array, or a
    :class:`LaggedPairs` and the ``end`` of its pairs (0 for ``x_t``, 1 for ``x_{t+lag}``).
    Indexing with positions (an int array, a tensor or a slice) returns a new float32 array.
    """

    def __init__(self, frames, index, end=None):
        self.frames = frames
        self.index = index
        self.end = end

    def __len__(self):
        return len(self.index)

    @property
    def shape(self):
        return (len(self), self.frames.width)

    def _rows(self, positions):
        if self.end is None:
            return self.index[_indices(positions, len(self))]
        return self.index.rows(positions, self.end)

    def __getitem__(self, positions):
        return self.frames.take(self._rows(positions))

    def tiled(self, repeats):
        """The same rows repeated ``repeats`` times over, as ``np.tile`` would stack them."""
        index = np.tile(self.index, repeats) if self.end is None else self.index.tiled(repeats)
        return Rows(self.frames, index, self.end)

    def materialise(self):
        """All rows as one array, from the whole transformed trajectories."""
        return self.frames.whole()[self._rows(slice(None))]


def training_inputs(columns, gathered):
    """A dict of :class:`Rows` as the data of a fit: as they are when ``gathered``, else copied.

    Returns ``None`` for ``None``.
    """
    if columns is None or gathered:
        return columns
    return {key: rows.materialise() for key, rows in columns.items()}


def tile_rows(column, repeats):
    """``column`` (an array or :class:`Rows`) stacked ``repeats`` times along its rows."""
    if isinstance(column, Rows):
        return column.tiled(repeats)
    return np.tile(column, (repeats, 1))
