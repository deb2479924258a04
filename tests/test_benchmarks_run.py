"""The benchmark scripts still run, on a tiny scale, and report no errors.

Not timed: the figures are the scripts' business (README). This only keeps them from rotting
unnoticed (the scale benchmark once broke when the sweep changed, and nobody ran it for a while).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.config import ROOT


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_updates_bench_runs_every_bot_without_errors():
    out = _run("updates_bench.py", "--patients", "3")
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines()
            if line.startswith(("echo (", "clinic bot ", "same calls, "))}
    assert set(rows) == {"echo (bare PTB)", "echo (PTB+aiohttp)", "clinic bot",
                         "same calls, no database"}
    for name, fields in rows.items():  # updates, errors: 3 patients x 25 updates, none failed
        numbers = [f for f in fields if f.replace(".", "").isdigit()]
        assert numbers[:2] == ["75", "0"], (name, fields)
    assert "questionnaires submitted and sent to staff: 3" in out
    assert "clinic / bare PTB echo throughput" in out


def test_reminders_bench_runs_and_records_every_outcome():
    out = _run("reminders_bench.py", "--appointments", "200", "--dispatch", "50")
    assert "dispatch:                50 reminders" in out


@pytest.mark.postgres
def test_two_rate_limited_instances_together_stay_under_telegrams_limit(pg_url):
    out = _run("reminders_bench.py", "--appointments", "200", "--dispatch", "120",
               "--rate-limited", "--instances", "2", "--database", pg_url)
    line = next(x for x in out.splitlines() if x.startswith("dispatch, rate limiter ON"))
    assert "2 instances together: 120 reminders" in line
    assert line.endswith("(30/s enforced): 0"), line  # not one 429


@pytest.mark.parametrize(("script", "args", "expected"), [
    ("scale_bench.py", ("--steps", "200,400"), "mark claimed"),
    ("qa_bench.py", ("--rounds", "1"), "latency ms over"),
])
def test_other_benchmarks_run(script, args, expected):
    assert expected in _run(script, *args)
