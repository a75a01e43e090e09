import numpy as np
import pytest

from eie.config import PRESETS
from eie.host import distribute, gather


@pytest.mark.parametrize("pes", [1, 3, 4, 64])
@pytest.mark.parametrize("length", [1, 5, 300])
def test_distribute_gather_round_trip(pes, length):
    cfg = PRESETS["tiny"].replace(pes=pes)
    v = np.arange(length) * 7 - 100
    slices = distribute(cfg, v)
    assert len(slices) == pes
    for k, s in enumerate(slices):            # element j lives in PE j mod N at index j // N
        for r, value in enumerate(s):
            assert value == v[r * pes + k]
    assert np.array_equal(gather(cfg, slices, length), v)


def test_per_pe_counters_refused_when_not_built():
    from eie.host import Runtime

    class NoLink:
        def transact(self, words, expect):
            raise AssertionError("nothing may be sent for a refused request")

    rt = Runtime(PRESETS["tiny"].replace(pe_counters=0), NoLink())
    with pytest.raises(ValueError, match=r"per-PE counters are not built in this design \(config pe_counters=0\)"):
        rt.read_counters(per_pe=True)
