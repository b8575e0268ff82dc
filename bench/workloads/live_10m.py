"""Report-time fixture: 10 million objects live at the peak, about 20 million events.

5 million ints and 5 million strs, all live at once, then freed together:
10 million allocations and 10 million frees when Python allocators are
traced. Each object is one allocation and nothing else allocates: the ints
come from a range, the strs (2 to 40 characters) from str.upper over a few
strings (str(int) would allocate a scratch object per str). It is the capture of issue 10's report
targets and of the exit-summary case (bench/capture_side.py). LIVE_10M_N overrides the number of each.
"""
import itertools
import os

n = int(os.environ.get("LIVE_10M_N", "5000000"))
ints = list(range(1 << 20, (1 << 20) + n))
words = ["ab" * (1 + k % 20) if k % 3 else "xyz" * (1 + k % 13) for k in range(97)]
strs = list(map(str.upper, itertools.islice(itertools.cycle(words), n)))
print("ints", len(ints), "strs", len(strs))
del ints, strs
