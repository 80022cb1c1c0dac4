"""A streaming FAQ chat: questions users repeat are replayed from the cache, still as a stream.

Each user session is one streamed question (``agent.run_stream``). The first time a question is
asked the model streams it live; when another user asks the same question, the stored answer is
replayed as text deltas, paced (``pace=``) so it reads like a live answer, with no model call.
Two users asking the same new question at the same moment share one model call and both watch it
stream live.

    python examples/streaming_chat.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from agentcache import AgentCache
from agentcache.pydantic_ai import CachedModel

ANSWERS = {
    "How do I reset my password?": "Open Settings, choose Security, then Reset password.",
    "Can I change my plan?": "Yes: Billing, then Change plan. The new price applies next month.",
    "Where is my invoice?": "Invoices are under Billing, Invoices; each is a PDF you can download.",
}
SESSIONS = [
    ["How do I reset my password?"],
    ["Can I change my plan?", "Can I change my plan?"],  # two users at the same moment
    ["How do I reset my password?"],
    ["Where is my invoice?"],
    ["Can I change my plan?"],
]
model_calls = 0


async def stream_fn(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """Stands in for a streaming LLM: a word every 40 ms."""
    global model_calls
    model_calls += 1
    question = str(messages[-1].parts[-1].content)
    for word in ANSWERS[question].split(" "):
        await asyncio.sleep(0.04)
        yield word + " "


async def ask(agent: Agent[None, str], user: str, question: str) -> str:
    async with agent.run_stream(question) as result:
        text = "".join([delta async for delta in result.stream_text(delta=True, debounce_by=None)])
    return f"{user}: {question}\n    -> {text.strip()}"


async def main() -> None:
    async with AgentCache("memory://") as cache:
        model = CachedModel(FunctionModel(stream_function=stream_fn, model_name="gpt-4o-mini"),
                            cache=cache, pace=0.01)  # fmt: skip
        agent = Agent(model, instructions="Answer support questions briefly.")
        for n, session in enumerate(SESSIONS):
            before = model_calls
            users = [f"user{n}{chr(97 + i)}" for i in range(len(session))]
            lines = await asyncio.gather(*(ask(agent, u, q) for u, q in zip(users, session, strict=True)))
            source = "live" if model_calls > before else "replayed from the cache"
            print("\n".join(lines) + f"    [{source}]")
        s = cache.stats
    print(f"\n{sum(map(len, SESSIONS))} questions, {model_calls} model calls, "
          f"{s.hits} replayed, {s.coalesced} shared a live stream")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
