"""Draws a GIL statistics CSV (scripts/gil-report --plot): per host thread, the
time spent waiting for the GIL and holding it, and the wait percentiles.

Usage: plot_gil.py GIL.csv OUT.png   (columns as pybridge::GilStats::csv writes them)
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source, out = sys.argv[1], sys.argv[2]
with open(source) as table:
    rows = sorted((row for row in csv.DictReader(table) if row["thread"] != "total"),
                  key=lambda row: row["thread"], reverse=True)
names = [row["thread"] for row in rows]
ms = lambda row, key: int(row[key]) / 1e6  # noqa: E731
us = lambda row, key: int(row[key]) / 1e3  # noqa: E731
positions = range(len(rows))

fig, (totals, waits) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
totals.barh([p + 0.2 for p in positions], [ms(r, "wait_total_ns") for r in rows], 0.4,
            label="waiting for the GIL")
totals.barh([p - 0.2 for p in positions], [ms(r, "hold_total_ns") for r in rows], 0.4,
            label="holding it")
totals.set_yticks(list(positions), names)
totals.set_xlabel("ms in the run")
totals.set_title("Time per host thread")
totals.legend()
for key, marker in [("wait_p50_ns", "o"), ("wait_p99_ns", "s"), ("wait_max_ns", "^")]:
    waits.scatter([us(r, key) for r in rows], list(positions), marker=marker,
                  label=key.replace("wait_", "").replace("_ns", ""))
waits.set_xscale("log")
waits.set_yticks(list(positions), names)
waits.set_xlabel("one wait for the GIL, microseconds (log)")
waits.set_title("Waits per host thread")
waits.legend()
for axis in (totals, waits):
    axis.grid(alpha=0.3)
fig.suptitle("thread_pool example: 8 C++ threads calling Python (pyb_gil_stats)")
fig.tight_layout()
fig.savefig(out)
