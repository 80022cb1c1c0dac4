"""The demo: an eval suite with sub-agents, run twice on the default SQLite cache.

~200 eval cases; each case is answered by a small pipeline of "agents" that call a simulated LLM
(async, with latency and token counts; no API key needed): a planner, three researchers whose
sub-questions overlap heavily between cases (and run concurrently), and a writer. The suite runs
once cold and once more in a fresh process, and prints what the cache saved.

    python examples/eval_suite.py            # the full demo (make demo)
    python examples/eval_suite.py --quick    # a smaller, faster run (used by the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from demo_report import render, run_in_fresh_process

from agentcache import AgentCache

NAMESPACE = "eval-demo"
MODEL = "sim-4o-mini"
PRICE_PER_MILLION = {"input": 0.15, "output": 0.60}  # USD, like a small hosted model
TOPICS = [
    "photosynthesis", "the French revolution", "TCP congestion control", "black holes",
    "the Krebs cycle", "Byzantine fault tolerance", "the Silk Road", "plate tectonics",
    "CRISPR", "the Marshall Plan", "quantum tunnelling", "monetary policy", "the printing press",
    "neural scaling laws", "antibiotic resistance", "the Apollo programme", "RAID levels",
    "coral bleaching", "the Meiji restoration", "public-key cryptography",
]  # fmt: skip


class SimulatedLLM:
    """An async stand-in for a hosted model: deterministic answers, latency, token counts."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        prompt = request["prompt"]
        input_tokens = len(prompt.split()) + 40
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        rng = random.Random(seed)
        words = [rng.choice(prompt.split()) for _ in range(rng.randint(60, 140))]
        await asyncio.sleep(self.latency * (0.5 + rng.random()))
        return {"text": " ".join(words), "input_tokens": input_tokens, "output_tokens": len(words)}


def usage(answer: dict[str, Any]) -> dict[str, Any]:
    """What the cache records with each answer, so it can report tokens and dollars saved."""
    cost = (
        answer["input_tokens"] * PRICE_PER_MILLION["input"]
        + answer["output_tokens"] * PRICE_PER_MILLION["output"]
    ) / 1e6
    return {
        "model": MODEL,
        "input_tokens": answer["input_tokens"],
        "output_tokens": answer["output_tokens"],
        "cost": cost,
    }


async def ask(cache: AgentCache, llm: SimulatedLLM, agent: str, prompt: str) -> str:
    """One agent's model call, through the shared cache; the key is everything that is sent."""
    request = {"model": MODEL, "temperature": 0.0, "agent": agent, "prompt": prompt}
    answer = await cache.get_or_call(request, llm.complete, label=agent, describe=usage)
    return str(answer["text"])


async def run_case(cache: AgentCache, llm: SimulatedLLM, case: int) -> str:
    rng = random.Random(case)
    topic = TOPICS[case % len(TOPICS)]
    question = f"Case {case}: explain {topic} to a student, with one worked example."
    plan = await ask(cache, llm, "planner", f"Plan an answer. Question: {question}")
    # Sub-questions come from a shared pool: different cases ask the same ones, often at once.
    subtopics = rng.sample(TOPICS, 3)
    research = await asyncio.gather(
        *(ask(cache, llm, "researcher", f"Key facts about {sub}, in five bullets.") for sub in subtopics)
    )
    draft = f"{question}\nPlan: {plan[:200]}\nNotes: " + " | ".join(r[:120] for r in research)
    return await ask(cache, llm, "writer", f"Write the final answer.\n{draft}")


async def run_suite(cases: int, latency: float, concurrency: int) -> dict[str, Any]:
    llm = SimulatedLLM(latency)
    limit = asyncio.Semaphore(concurrency)  # like a provider's rate limit

    async def limited(case: int) -> str:
        async with limit:
            return await run_case(cache, llm, case)

    started = time.perf_counter()
    async with AgentCache(namespace=NAMESPACE) as cache:  # the default: .agentcache/cache.db
        answers = await asyncio.gather(*(limited(i) for i in range(cases)))
        stats = cache.stats
    wall = time.perf_counter() - started
    return {
        "upstream_calls": llm.calls,
        "wall_seconds": wall,
        "answers_digest": hashlib.sha256(json.dumps(answers).encode()).hexdigest(),
        **stats.as_dict(),
    }


async def clear() -> int:
    async with AgentCache(namespace=NAMESPACE) as cache:
        return await cache.clear()


def table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    header = ("", "upstream calls", "hits", "coalesced", "wall time", "call time saved",
              "tokens saved", "$ saved")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for name, r in runs:
        tokens = r["saved_input_tokens"] + r["saved_output_tokens"]
        rows.append((
            name, f"{r['upstream_calls']:,}", f"{r['hits']:,}", f"{r['coalesced']:,}",
            f"{r['wall_seconds']:.2f} s", f"{r['saved_seconds']:.1f} s", f"{tokens:,}",
            f"${r['saved_cost']:.4f}",
        ))  # fmt: skip
    return render(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="mean seconds per model call")
    parser.add_argument("--concurrency", type=int, default=50, help="cases in flight at once")
    parser.add_argument("--quick", action="store_true", help="40 cases, 20 ms latency")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write both runs' figures here (make plots)")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.latency = 40, 0.02
    if args.child:
        print(json.dumps(asyncio.run(run_suite(args.cases, args.latency, args.concurrency))))
        return
    asyncio.run(clear())
    print(f"agentcache demo: {args.cases} eval cases, planner + 3 researchers + writer per case,")
    print(f"a simulated model with ~{args.latency * 1000:.0f} ms latency; cache at .agentcache/cache.db\n")
    cold = run_in_fresh_process(__file__, args)
    warm = run_in_fresh_process(__file__, args)
    print(table([("run 1 (cold)", cold), ("run 2 (new process)", warm)]))
    if args.json is not None:
        runs = [{"run": "run 1 (cold)", **cold}, {"run": "run 2 (new process)", **warm}]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    same = cold["answers_digest"] == warm["answers_digest"]
    print(f"\nrun 2 answers identical to run 1: {'yes' if same else 'NO'}; "
          f"speed-up {cold['wall_seconds'] / warm['wall_seconds']:.0f}x")  # fmt: skip
    if not same or warm["upstream_calls"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
