"""Learning benchmark: label-free GRPO of the tiny agent against its ablations, on CPU.

    python benchmarks/bench_learning.py                      # every variant (see docs/learning.md)
    python benchmarks/bench_learning.py --variants label-free --steps 20 --out runs/learning

Same as ``medgym learning``; writes OUT/learning.json, OUT/learning_meta.json and
OUT/learning.html, and prints the table.
"""

from __future__ import annotations

from medgym.cli import app

if __name__ == "__main__":
    import sys

    app(["learning", *sys.argv[1:]])
