"""Draws the interpreters benchmark's throughput tables (scripts/bench-interpreters.sh --plot).

Usage: plot_interpreters.py OUT.png VERSION=TABLE.csv [...]
Each table has the columns threads,main,pool (calls of work(200000) per second).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out, tables = sys.argv[1], sys.argv[2:]
fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
for spec in tables:
    version, path = spec.split("=", 1)
    with open(path) as table:
        rows = list(csv.DictReader(table))
    threads = [int(row["threads"]) for row in rows]
    ax.plot(threads, [float(row["main"]) for row in rows], "o--",
            label=f"main interpreter, CPython {version}")
    ax.plot(threads, [float(row["pool"]) for row in rows], "s-",
            label=f"pool of 2 own-GIL interpreters, CPython {version}")
ax.set_xlabel("host threads")
ax.set_ylabel("work(200000) calls per second")
ax.set_xticks([1, 2, 4])
ax.set_ylim(bottom=0)
ax.set_title("CPU-bound Python from host threads (2-core machine)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out)
print(f"plot written to {out}")
