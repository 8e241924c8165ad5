"""Throughput of the default embedder (MiniLM int8 ONNX) on short sentences.

Run from the repository root::

    python benchmarks/embed_speed.py            # 1000 sentences, 3 rounds
    python benchmarks/embed_speed.py --n 2000 --batch-size 64 --threads 2

Model loading and a warm-up batch are excluded from the timing; the printed
texts/s is the median over the rounds (best round shown too). Texts per
CPU-second (all threads together) is printed as well: it stays meaningful
when other processes share the machine and wall-clock numbers swing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from engramdb.recall.embed import MiniLMEmbedder

_SUBJECTS = ["The user", "My manager", "Our team", "The assistant", "A customer", "Alice", "Bob"]
_VERBS = ["prefers", "asked about", "mentioned", "forgot", "scheduled", "rejected", "liked"]
_OBJECTS = [
    "dark mode in the editor",
    "the quarterly budget review",
    "a vegetarian restaurant near the office",
    "the flight to Berlin on Tuesday",
    "renewing the TLS certificates",
    "python type hints",
    "the meeting notes from last week",
    "a refund for the broken laptop",
]
_TAILS = ["", " yesterday", " again", " twice this month", " before the deadline", " in Slack"]


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct-ish short memory-like sentences (5-15 words), reproducible."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        f"{rng.choice(_TAILS)} (note {i})."
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="sentences per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
    args = parser.parse_args()

    texts = sentences(args.n)
    embedder = MiniLMEmbedder(batch_size=args.batch_size, threads=args.threads)
    embedder.embed(texts[:32])  # load the model and warm up outside the timing

    rates, cpu_rates = [], []
    for _ in range(args.rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        embedder.embed(texts)
        rates.append(len(texts) / (time.perf_counter() - wall))
        cpu_rates.append(len(texts) / (time.process_time() - cpu))
    print(
        f"MiniLM int8: {statistics.median(rates):.0f} texts/s median, {max(rates):.0f} best "
        f"({args.n} sentences x {args.rounds} rounds, batch {embedder.batch_size}, "
        f"{embedder.threads} threads); {statistics.median(cpu_rates):.0f} texts per CPU-second"
    )


if __name__ == "__main__":
    main()
