"""The pydantic-ai examples run as documented, offline (the demo in its quick form)."""

from __future__ import annotations

from pathlib import Path

from tests.test_examples import run


async def test_the_agent_pipeline_reruns_in_a_fresh_process_with_zero_model_calls(
    tmp_path: Path,
) -> None:
    out = await run("agent_pipeline.py", "--quick", cwd=tmp_path)
    cold = next(line for line in out.splitlines() if line.startswith("run 1 (cold)")).split()
    warm = next(line for line in out.splitlines() if line.startswith("run 2 (new process)")).split()
    assert int(cold[3]) > 0  # model calls in the cold run
    assert int(cold[5]) > 0  # coalesced: overlapping sub-questions asked at the same moment
    assert warm[4] == "0"  # model calls in the second run
    assert "identical to run 1: yes" in out
    assert (tmp_path / ".agentcache" / "cache.db").is_file()


async def test_the_eval_rerun_makes_no_model_calls_but_runs_the_tools(tmp_path: Path) -> None:
    out = await run("eval_rerun.py", cwd=tmp_path)
    first, second = out.strip().splitlines()
    assert "model calls 60, tool runs 30, hits 0" in first
    assert "model calls 0, tool runs 30, hits 60" in second


async def test_the_streaming_chat_replays_repeated_questions(tmp_path: Path) -> None:
    out = await run("streaming_chat.py", cwd=tmp_path)
    assert out.count("[replayed from the cache]") == 2
    assert "6 questions, 3 model calls, 2 replayed, 1 shared a live stream" in out


async def test_ci_replay_serves_the_recording_and_fails_on_a_new_prompt(tmp_path: Path) -> None:
    out = await run("ci_replay.py", cwd=tmp_path)
    assert "replayed 2 responses, 0 model calls" in out
    assert "fails the build" in out
