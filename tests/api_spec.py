"""The official Bot API method list (shared/telegram-bot-api/api.json) as a request checker."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_CANDIDATES = [
    Path(os.environ["BOT_API_SPEC"]) if os.environ.get("BOT_API_SPEC") else None,
    ROOT.parent / "shared" / "telegram-bot-api" / "api.json",
    ROOT / "shared" / "telegram-bot-api" / "api.json",
]


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    for path in SPEC_CANDIDATES:
        if path is not None and path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    raise RuntimeError(
        "Bot API spec not found: expected ../shared/telegram-bot-api/api.json beside the "
        "checkout (or set BOT_API_SPEC=/path/to/api.json)"
    )


@dataclass
class UploadedFile:
    filename: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


class SpecChecker:
    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec or load_spec()
        self.methods: dict[str, Any] = self.spec["methods"]
        self.types: dict[str, Any] = self.spec["types"]

    def has_method(self, name: str) -> bool:
        return name in self.methods

    # Values arrive as form fields: strings, JSON-encoded unless the declared type is a String.
    def decode(self, method: str, raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        problems: list[str] = []
        fields = {f["name"]: f for f in self.methods[method].get("fields", [])}
        params: dict[str, Any] = {}
        for name, value in raw.items():
            field = fields.get(name)
            if field is None:
                problems.append(f"{method}: unknown parameter {name!r}")
                continue
            params[name] = self._decode_value(value, field["types"])
            problems += [f"{method}.{name}: {p}" for p in self.check_value(params[name], field["types"])]
        for name, field in fields.items():
            if field.get("required") and name not in raw:
                problems.append(f"{method}: missing required parameter {name!r}")
        return params, problems

    def _decode_value(self, value: Any, types: list[str]) -> Any:
        if not isinstance(value, str):
            return value  # an uploaded file
        if "String" in types:
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value

    def check_value(self, value: Any, types: list[str], depth: int = 0) -> list[str]:
        errors: list[list[str]] = []
        for t in types:
            errs = self._check_one(value, t, depth)
            if not errs:
                return []
            errors.append(errs)
        return [f"value does not match {' or '.join(types)}: {errors[0][0]}"]

    def _check_one(self, value: Any, t: str, depth: int) -> list[str]:
        if t.startswith("Array of "):
            if not isinstance(value, list):
                return ["expected an array"]
            inner = t.removeprefix("Array of ")
            return [e for item in value for e in self._check_one(item, inner, depth + 1)]
        if t == "Integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
            ok = ok or (isinstance(value, str) and value.lstrip("-").isdigit())
            return [] if ok else ["expected an integer"]
        if t == "Float":
            return [] if isinstance(value, int | float) and not isinstance(value, bool) else ["expected a number"]
        if t == "Boolean":
            return [] if isinstance(value, bool) or value in ("true", "false") else ["expected a boolean"]
        if t == "String":
            return [] if isinstance(value, str) and value else ["expected a non-empty string"]
        if t == "InputFile":
            return [] if isinstance(value, UploadedFile) else ["expected an uploaded file"]
        spec = self.types.get(t)
        if spec is None:
            return [f"unknown type {t}"]
        if "subtypes" in spec:
            for sub in spec["subtypes"]:
                if not self._check_one(value, sub, depth):
                    return []
            return [f"matches no subtype of {t}"]
        if not isinstance(value, dict):
            return [f"expected a {t} object"]
        fields = {f["name"]: f for f in spec.get("fields", [])}
        problems = [f"{t}: unknown field {k!r}" for k in value if k not in fields]
        for name, field in fields.items():
            if name not in value:
                if field.get("required"):
                    problems.append(f"{t}: missing field {name!r}")
                continue
            problems += self.check_value(value[name], field["types"], depth + 1)
        return problems
