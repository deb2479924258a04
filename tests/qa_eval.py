"""The evaluation set (tests/qa_eval.yaml) and its scoring, shared by the test and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.content import Content, Node
from bot.qa import QAEngine

EVAL_FILE = Path(__file__).resolve().parent / "qa_eval.yaml"


# Out of scope: anything but a quote of the document (or smalltalk) counts as handed on.
HANDED_ON = frozenset({"unknown", "red_flag", "symptom", "unreadable", "booking"})


@dataclass
class EvalSet:
    answerable: list[tuple[str, list[Node]]]
    out_of_scope: list[str]
    red_flags: list[str]
    expect_kind: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Report:
    top1: float
    handoff: float
    red_flag_recall: float
    false_alarms: int
    right_but_unsure: int
    misses: list[str] = field(default_factory=list)
    kinds: float = 1.0  # share of expect_kind messages that got their kind


def resolve(content: Content, ref: str) -> Node:
    doc = content.documents[0].doc_id
    key = f"{doc}#about" if ref == "about" else f"{doc}/{ref}"
    for node in content.nodes.values():
        if node.key == key:
            return node
    raise KeyError(f"qa_eval.yaml: no menu node {ref!r}")


def load_eval(content: Content, path: Path = EVAL_FILE) -> EvalSet:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    answerable = [(item["q"], [resolve(content, r) for r in item["expect"]])
                  for item in data["answerable"]]
    kinds = [(item["q"], item["kind"]) for item in data.get("expect_kind") or []]
    return EvalSet(answerable, list(data["out_of_scope"]), list(data["red_flags"]), kinds)


def evaluate(engine: QAEngine, data: EvalSet) -> Report:
    correct = unsure = alarms = 0
    misses: list[str] = []
    for question, expected in data.answerable:
        result = engine.ask(question)
        best = result.best.node if result.best else None
        if result.kind == "red_flag":
            alarms += 1
        if result.kind == "answer" and best in expected:
            correct += 1
            continue
        if result.kind == "unknown" and best in expected:
            unsure += 1
        got = best.key if best else "-"
        misses.append(f"ANSWERABLE {question!r}: {result.kind} {got} "
                      f"conf={result.confidence:.2f} want {expected[0].key}")
    handed = 0
    for question in data.out_of_scope:
        result = engine.ask(question)
        if result.kind in HANDED_ON:
            handed += 1
        else:
            misses.append(f"OUT OF SCOPE {question!r}: {result.kind} "
                          f"{result.best.node.key if result.best else '-'} conf={result.confidence:.2f}")
    flagged = 0
    for question in data.red_flags:
        result = engine.ask(question)
        if result.kind == "red_flag":
            flagged += 1
        else:
            misses.append(f"RED FLAG {question!r}: {result.kind}")
    right_kind = 0
    for question, kind in data.expect_kind:
        result = engine.ask(question)
        if result.kind == kind:
            right_kind += 1
        else:
            misses.append(f"KIND {question!r}: {result.kind}, want {kind}")
    return Report(
        top1=correct / len(data.answerable),
        handoff=handed / len(data.out_of_scope),
        red_flag_recall=flagged / len(data.red_flags),
        false_alarms=alarms,
        right_but_unsure=unsure,
        misses=misses,
        kinds=right_kind / len(data.expect_kind) if data.expect_kind else 1.0,
    )
