"""The one YAML reader of the appliance's own files (config, scan plans, calibrations): PyYAML's safe loader, stricter.

Two differences from ``yaml.safe_load``, both for values a person types:

- ``1e6`` is the number 1000000.0. PyYAML follows YAML 1.1, where a float needs a dot (``1.0e6``), so ``1e6``
  was the text ``'1e6'`` and a plan's ``grid.bottom: 1e6`` was refused as "must be a number ..., got '1e6'".
  YAML 1.2 and the ``--sim-set`` parser (``appliance.sim.overrides``) read it as a number.
- A key given twice in one mapping is an error naming the key and both lines. PyYAML keeps the last one, so a
  second ``camera:`` section silently replaced the first.

Errors are ``yaml.YAMLError`` (a ``MarkedYAMLError`` with ``problem`` and ``problem_mark``), so each caller keeps
its own way of reporting a file that is not valid YAML.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

# An exponent without a dot ("1e6", "-2E-3", "5.e3"): the forms YAML 1.1's float rule leaves as text.
_EXPONENT = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$")
_MERGE = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads exponent-form numbers as floats and refuses duplicate keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping ``node`` as a dict, after refusing a key it gives twice."""
        _refuse_duplicates(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicates(loader: StrictLoader, node: MappingNode) -> None:
    """Raise naming a key the mapping ``node`` gives twice (merge keys ``<<`` may be overridden, as YAML says)."""
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:
            continue
        key = loader.construct_object(key_node)
        try:
            if key in first_line:
                raise ConstructorError("while reading a mapping", node.start_mark,
                                       f"duplicate key {key!r} (first given on line {first_line[key] + 1})",
                                       key_node.start_mark)
            first_line[key] = key_node.start_mark.line
        except TypeError:  # an unhashable key: the base constructor refuses it with its own message
            continue


StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse one YAML document as ``yaml.safe_load`` does, with ``1e6`` a number and duplicate keys refused.

    Raises
    ------
    yaml.YAMLError
        Not valid YAML, or a key given twice in one mapping (the problem names it, the mark is the second one).
    """
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 -- a SafeLoader subclass
