"""A policy's YAML text to a DatasetPolicy, or PolicyInvalid listing every located problem.

Three passes, each in its own module: located YAML (policy_yaml), the JSON Schema, and the rules a
schema cannot say (policy_rules); every problem is reported with its file, line and column, and
none stops the others from being found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml

from gateway.core.policy import DatasetPolicy, build_policy
from gateway.core.policy_rules import Sound, check_semantics, report_schema_error
from gateway.core.policy_yaml import Problems, StrictLoader, compose_strict, infinite_numbers, key_problems
from gateway.errors import Located, PolicyInvalid


def parse_policy(text: str, filename: str, schema: Mapping[str, Any], *, stored: bool = False) -> DatasetPolicy:
    """YAML text -> DatasetPolicy, or PolicyInvalid listing every located problem. `stored`: a
    document the store already holds (see `policy_rules.check_semantics`)."""
    try:
        root = compose_strict(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyInvalid([Located(filename, line, col, f"YAML: {exc.problem or exc}")]) from None
    problems = Problems(filename, root)
    for key, message in key_problems(root):
        problems.add_at(key, message)
    try:
        doc = yaml.load(text, Loader=StrictLoader) if root is not None else None
    except yaml.MarkedYAMLError:  # a collection as a key: reported above
        raise PolicyInvalid(problems.items) from None
    if not isinstance(doc, dict):
        problems.add((), "a policy is a mapping with the keys the schema lists")
        raise PolicyInvalid(problems.items)
    for path in infinite_numbers(doc):
        problems.broken.append(path)
        problems.add(path, f"{'.'.join(map(str, path))}: numbers must be finite, not .inf or .nan")
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        report_schema_error(err, problems)
    # Semantic rules run on every part the schema found sound, so one pass reports them all.
    check_semantics(doc, problems, Sound(doc, problems.broken), stored=stored)
    if problems.items:
        raise PolicyInvalid(problems.items)
    return build_policy(doc)
