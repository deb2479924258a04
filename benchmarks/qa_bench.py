"""Question answering on the evaluation set: accuracy, handoff, red flags, latency.

    python benchmarks/qa_bench.py            figures at the configured threshold
    python benchmarks/qa_bench.py --sweep    also accuracy/handoff for a range of thresholds
    python benchmarks/qa_bench.py --errors   also list every miss

Prints: top-1 accuracy on answerable questions (a below-threshold answer counts as a miss),
handoff rate on out-of-scope questions, red-flag recall, red-flag false alarms on answerable
questions, and latency p50/p95/p99 of QAEngine.ask over all questions (many rounds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.content import load_content  # noqa: E402
from bot.qa import build_qa  # noqa: E402
from tests.qa_eval import evaluate, load_eval  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    content = load_content(ROOT / "content")
    engine = build_qa(content, ROOT / "content")
    data = load_eval(content)
    report = evaluate(engine, data)
    n_ans, n_oos, n_rf = len(data.answerable), len(data.out_of_scope), len(data.red_flags)
    print(f"questions: {n_ans} answerable, {n_oos} out of scope, {n_rf} red flags")
    print(f"threshold: {engine.config.threshold:.2f}")
    print(f"top-1 accuracy (answerable):      {report.top1:.1%}")
    print(f"  of which retrieval right, below threshold: {report.right_but_unsure}")
    print(f"handoff rate (out of scope):      {report.handoff:.1%}")
    print(f"red-flag recall:                  {report.red_flag_recall:.1%}")
    print(f"red-flag false alarms (answerable): {report.false_alarms}")

    questions = [q for q, _ in data.answerable] + data.out_of_scope + data.red_flags
    timings: list[float] = []
    engine.ask("warm up")
    for _ in range(args.rounds):
        for q in questions:
            start = time.perf_counter()
            engine.ask(q)
            timings.append((time.perf_counter() - start) * 1000)
    qs = statistics.quantiles(timings, n=100)
    print(f"latency ms over {len(timings)} asks: p50 {qs[49]:.3f}  p95 {qs[94]:.3f}  "
          f"p99 {qs[98]:.3f}  max {max(timings):.3f}")
    long_text = " ".join(["my skin feels a bit dry and I wonder about the texture"] * 60)
    start = time.perf_counter()
    engine.ask(long_text)
    print(f"latency ms for a {len(long_text)}-character message: "
          f"{(time.perf_counter() - start) * 1000:.3f}")

    if args.sweep:
        print("\nthreshold  top-1  handoff")
        for t in [x / 20 for x in range(4, 17)]:
            engine.config.threshold = t
            r = evaluate(engine, data)
            print(f"  {t:.2f}    {r.top1:6.1%}  {r.handoff:6.1%}")
    if args.errors:
        print("\nconfidence of the best match, out-of-scope questions:")
        for q in data.out_of_scope:
            r = engine.ask(q)
            print(f"  {r.confidence:.2f} {r.kind:8} {q}")
        print("\nmisses:")
        for line in report.misses:
            print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
