"""Batches through shared memory: a worker's rows are exactly the parent's, the segment grows
when a batch does not fit and is reused when it does."""

import numpy as np

from optcli.parallel.batch_memory import BatchReader, BatchRef, BatchWriter


def test_rows_come_back_exactly_and_the_segment_is_reused_or_grown():
    rng = np.random.default_rng(0)
    writer, reader = BatchWriter(), BatchReader()
    try:
        names = []
        for n in (8, 5, 40):                          # 5 fits the first segment, 40 does not
            feeds = {"image": rng.standard_normal((n, 1, 4, 4)).astype(np.float32),
                     "ids": rng.integers(0, 9, (n, 3))}
            name, layout = writer.write(feeds)
            names.append(name)
            got = reader.read(BatchRef(name, layout, (1, n - 1)))
            for k, v in feeds.items():
                assert got[k].dtype == v.dtype
                np.testing.assert_array_equal(got[k], v[1:n - 1])
        assert names[0] == names[1] != names[2]
    finally:
        reader.close()
        writer.close()
