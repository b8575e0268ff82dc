# The exit-summary case of bench/run.py (issue 10): about 20 million events,
# 10 million objects live at the peak (5M ints and 5M strs).
ints = [i + 1_000_000 for i in range(5_000_000)]
strs = [str(i) for i in ints]
del ints, strs
