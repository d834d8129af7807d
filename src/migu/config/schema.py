"""The configuration schema machinery shared by every ``migu`` command.

A configuration is a tree of dataclasses that derive from :class:`Section`; the top of the tree
derives from :class:`Schema`. This module owns what all of them share: the strict YAML reader, the
``key=value`` override parser, dotted-key merging, type coercion, and the error messages (the
dotted key, the value, what is allowed, and "did you mean" for an unknown key). The concrete
schemas live beside what they configure: :mod:`migu.engine.config` (``migu run``) and
:mod:`migu.pretrain.config` (``migu pretrain``).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "ConfigError",
    "Schema",
    "Section",
    "check_dir_name",
    "check_variants",
    "coerce",
    "joined_problems",
    "load_yaml",
    "merged",
    "nonempty",
    "parse_overrides",
    "read_config_file",
    "type_error",
    "unknown_key",
]

S = TypeVar("S", bound="Schema")


class ConfigError(ValueError):
    """A configuration is invalid: unknown key, wrong type, value out of range, bad file."""


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error.

    Plain YAML keeps the last of two equal keys, so a second ``train:`` block would silently drop
    the whole first one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first at line {seen[key].line + 1}); "
                    "YAML would keep only the last one. Merge the two",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML config text safely; a key repeated in one mapping raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The resolved path and the mapping held by the YAML file ``path`` (empty file: ``{}``).

    Raises:
        ConfigError: a missing file, a YAML syntax error (with line and column), or a file that
            does not hold a mapping.
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    try:
        data = load_yaml(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"invalid YAML in {file} at {where}: {problem}") from None
    if data is None:  # an empty file means all defaults
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file} must hold a mapping of keys to values, got {type(data).__name__}.")
    return file, dict(data)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Parse ``"key=value"`` strings (the value as YAML) into a dotted-key mapping.

    Raises:
        ConfigError: an item without ``=`` or with a value that is not valid YAML.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value, e.g. train.lr=1e-4.")
        try:
            parsed[key] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({e}).") from None
    return parsed


class Section:
    """Base of the config dataclasses: coerce each field to its annotated type, then validate.

    ``_prefix`` is the section's key in its schema, so messages name the full dotted key.
    """

    _prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, coerce(self._key(f.name), getattr(self, f.name), hints[f.name]))
        self._validate()

    def _validate(self) -> None:
        """Ranges and choices; types are already checked."""

    def _key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def _choice(self, name: str, choices: Sequence[str]) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ConfigError(f"{self._key(name)}={value!r} is not one of: {', '.join(choices)}.")

    def _range(
        self, name: str, low: float | None = None, high: float | None = None, *, strict_low: bool = False
    ) -> None:
        """Check ``low <= value < high`` (``low < value`` with ``strict_low``); ``None`` values pass."""
        value = getattr(self, name)
        if value is None:
            return
        too_low = low is not None and (value <= low if strict_low else value < low)
        too_high = high is not None and value >= high
        if too_low or too_high:
            if high is not None:
                allowed = f"in [{low}, {high})"
            else:
                allowed = f"{'>' if strict_low else '>='} {low}"
            raise ConfigError(f"{self._key(name)}={value!r} is out of range: it must be {allowed}.")


class Schema(Section):
    """A whole configuration (the root of a tree of sections): plain data in and out, overrides."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, str, numbers, bools, None) that round-trips through
        :meth:`from_dict` and ``yaml.safe_dump``."""
        return asdict(self)  # type: ignore[call-overload]

    def with_overrides(self: S, overrides: Mapping[str, Any]) -> S:
        """A new config with dotted-key overrides applied; this one is unchanged.

        Args:
            overrides: Dotted key -> value, e.g. ``{"train.lr": 1e-4}``. A mapping given for a
                section (``{"train": {"lr": 1e-4}}``) is merged into it; ``variants.NAME`` sets one
                variant's overrides and ``variants.NAME.KEY`` one override of it.

        Raises:
            ConfigError: an unknown key or an invalid value.
        """
        return type(self)(**merged(self.to_dict(), overrides, type(self)))

    @classmethod
    def from_dict(cls: type[S], d: Mapping[str, Any]) -> S:
        """Build from nested (or dotted) keys; missing keys keep their defaults.

        Raises:
            ConfigError: not a mapping, an unknown key or an invalid value.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config must be a mapping of keys to values, got {type(d).__name__}.")
        return cls().with_overrides(d)

    @classmethod
    def load(
        cls: type[S],
        path: str | Path | None = None,
        overrides: Sequence[str] = (),
        *,
        base: Mapping[str, Any] | S | None = None,
    ) -> S:
        """``base`` (defaults, or a preset's mapping), then the YAML file ``path``, then the
        ``key=value`` ``overrides`` (each value parsed as YAML).

        Raises:
            ConfigError: a missing file, a YAML error, a malformed override, or an invalid config; an
                error found in the file names the file.
        """
        parsed = parse_overrides(overrides)  # a malformed override fails before anything else
        config = base if isinstance(base, cls) else cls.from_dict(base or {})
        problems: list[str] = []
        if path is not None:
            file, data = read_config_file(path)
            try:
                config = config.with_overrides(data)
            except ConfigError as e:
                problems += [f"{file}: {m}" for m in config._problems(data) or [str(e)]]
        if parsed:
            try:
                config = config.with_overrides(parsed)
            except ConfigError as e:
                problems += config._problems(parsed) or [str(e)]
        if problems:
            raise ConfigError(_joined(problems))
        return config

    def _problems(self, overrides: Mapping[str, Any]) -> list[str]:
        """The message of every override that fails on its own (a section given as a mapping is
        split into its keys), so that all the typos of a command line are reported at once."""
        hints = _hints(type(self))
        single: list[tuple[str, Any]] = []
        for key, value in overrides.items():
            if isinstance(value, Mapping) and is_dataclass(hints.get(str(key))):
                single += [(f"{key}.{k}", v) for k, v in value.items()]
            else:
                single.append((str(key), value))
        problems = []
        for key, value in single:
            try:
                self.with_overrides({key: value})
            except ConfigError as e:
                problems.append(str(e))
        return problems

    def _check_variant_configs(self) -> None:
        """Build every variant now, so that a bad override fails before the first run, not midway."""
        base = self.to_dict()
        base["variants"] = {}
        problems = []
        for vname, overrides in getattr(self, "variants", {}).items():
            try:
                type(self)(**merged(base, overrides, type(self)))
            except ConfigError as e:
                problems.append(f"variants.{vname}: {e}")
        if problems:
            raise ConfigError(_joined(problems))


# --- checks shared by the schemas ------------------------------------------------------------------


def nonempty(key: str, value: str) -> None:
    """Raise :class:`ConfigError` when the string ``value`` of ``key`` is blank."""
    if not value.strip():
        raise ConfigError(f"{key}={value!r} must be a non-empty string.")


def check_dir_name(key: str, value: str) -> None:
    """Raise :class:`ConfigError` when ``value`` cannot be one directory name (it becomes one)."""
    if "/" in value or "\\" in value or value in (".", ".."):
        raise ConfigError(f"{key}={value!r} must not contain path separators or be '.'/'..'.")


def type_error(key: str, value: Any, expected: str) -> ConfigError:
    """The error for ``key=value`` of the wrong type (``expected``: "an integer", ...)."""
    return ConfigError(f"{key}={value!r} must be {expected}, got {type(value).__name__}.")


def check_variants(
    variants: Any,
    *,
    what: str = "variant name -> overrides",
    check: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Normalize a ``variants`` mapping (name -> dotted overrides; ``None`` overrides = none).

    Args:
        variants: The value given for ``variants``.
        what: How the message describes the mapping.
        check: Extra rule for one variant, called with its name and overrides.

    Raises:
        ConfigError: not a mapping, a blank name, overrides that are not a mapping of string keys,
            or overrides that set ``variants`` again.
    """
    if variants is None:
        return {}
    if not isinstance(variants, Mapping):
        raise type_error("variants", variants, f"a mapping of {what}")
    checked: dict[str, dict[str, Any]] = {}
    for name, overrides in variants.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"variant name {name!r} must be a non-empty string.")
        key = f"variants.{name}"
        if overrides is None:  # "baseline:" with nothing under it: the base config as is
            overrides = {}
        if not isinstance(overrides, Mapping):
            raise type_error(key, overrides, "a mapping of overrides, e.g. {migu.enabled: true}")
        for k in overrides:
            if not isinstance(k, str):
                raise ConfigError(f"{key}: override key {k!r} must be a string.")
            if k == "variants" or k.startswith("variants."):
                raise ConfigError(f"{key}: a variant may not set 'variants' (got key {k!r}).")
        if check is not None:
            check(name, overrides)
        checked[name] = copy.deepcopy(dict(overrides))
    return checked


def unknown_key(key: str, section: Any, root: type | None = None) -> ConfigError:
    """Error for an unknown dotted ``key`` found in dataclass ``section``: the closest key of the
    schema ``root`` (default: the keys under ``section`` itself), else the section's keys."""
    if root is None:
        prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
        candidates = _all_keys(section, prefix)
    else:
        candidates = _all_keys(root)
    close = difflib.get_close_matches(key, candidates, n=1)
    if close:
        hint = f"Did you mean {close[0]!r}?"
    else:
        hint = f"Known keys here: {', '.join(f.name for f in fields(section))}."
    return ConfigError(f"unknown config key {key!r}. {hint}")


def merged(tree: dict[str, Any], overrides: Mapping[str, Any], root: type) -> dict[str, Any]:
    """A copy of the plain config ``tree`` (of the dataclass ``root``) with dotted ``overrides`` set
    in it; an unknown key fails with its full name and the closest key of ``root``."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"overrides must be a mapping of dotted keys to values, got {type(overrides).__name__}."
        )
    tree = copy.deepcopy(tree)
    for key, value in overrides.items():
        _set(tree, str(key), value, root)
    return tree


# --- internals -------------------------------------------------------------------------------------


def _joined(problems: list[str]) -> str:
    return joined_problems(problems, "in the configuration")


def joined_problems(problems: Sequence[str], where: str) -> str:
    """One message for one problem; for several, ``"N problems <where>:"`` and a numbered list."""
    if len(problems) == 1:
        return problems[0]
    lines = "\n".join(f"  {i}. {p}" for i, p in enumerate(problems, 1))
    return f"{len(problems)} problems {where}:\n{lines}"


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, for "did you mean" suggestions."""
    keys = []
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        keys.append(key)
        sub = _hints(cls)[f.name]
        if is_dataclass(sub):
            keys.extend(_all_keys(sub, key + "."))  # type: ignore[arg-type]
    return keys


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` (the few forms the schema uses) and normalize it."""
    args = get_args(tp)
    if type(None) in args:
        if value is None:
            return None
        rest = tuple(a for a in args if a is not type(None))
        tp = rest[0] if len(rest) == 1 else tp
        args = get_args(tp)
    if is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise type_error(key, value, "a mapping of keys to values")
        for k in value:
            if k not in {f.name for f in fields(tp)}:
                raise unknown_key(f"{key}.{k}", tp)
        return tp(**value)
    if tp is bool:
        if not isinstance(value, bool):
            raise type_error(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error(key, value, "an integer")
        return value
    if tp is float:
        number = value
        # YAML 1.1 reads "1e-4" (no dot) as a string, so numeric strings are accepted.
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise type_error(key, value, "a number") from None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise type_error(key, value, "a number")
        if not math.isfinite(number):
            raise ConfigError(f"{key}={value!r} must be a finite number.")
        return float(number)
    if tp is str:
        if not isinstance(value, str):
            raise type_error(key, value, "a string")
        return value
    if tp == list[int]:
        if isinstance(value, int) and not isinstance(value, bool):  # "seeds=3": a list of one
            return [value]
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise type_error(key, value, "a list of integers, e.g. [0, 1, 2]")
        return list(value)
    if get_origin(tp) is list or list[str] in args:
        if isinstance(value, str):
            if get_origin(tp) is not list:  # str | list[str]: a string is a value of its own
                return value
            if "," in value:  # "data.tasks=a,b" parses as one string
                raise ConfigError(f"{key}={value!r}: write a list in brackets, e.g. {key}=[a,b].")
            return [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise type_error(key, value, "a list of strings")
        return list(value)
    return value  # dict[str, Any] (variants) is checked by check_variants


def _set(tree: dict[str, Any], key: str, value: Any, root: type) -> None:
    """Set dotted ``key`` in ``tree``, walking the schema of ``root`` so that unknown keys fail with
    their full name."""
    parts = key.split(".")
    cls: Any = root
    node = tree
    for i, part in enumerate(parts):
        if part not in {f.name for f in fields(cls)}:
            raise unknown_key(key, cls, root)
        here = ".".join(parts[: i + 1])
        sub = _hints(cls)[part]
        if cls is root and part == "variants" and i < len(parts) - 1:
            # variants.NAME sets a variant's overrides; variants.NAME.KEY one override of it.
            variants = node["variants"] if isinstance(node["variants"], dict) else {}
            name, rest = parts[i + 1], ".".join(parts[i + 2 :])
            if not rest:
                variants[name] = value
            else:
                current = variants.get(name)
                variants[name] = {**(current if isinstance(current, Mapping) else {}), rest: value}
            node["variants"] = variants
            return
        if i == len(parts) - 1:
            if is_dataclass(sub) and isinstance(value, Mapping):
                for k, v in value.items():  # a section given as a mapping is merged, not replaced
                    _set(tree, f"{here}.{k}", v, root)
            else:
                node[part] = value
            return
        if get_origin(sub) is dict:
            # A mapping field (eval.general, train.task_epochs, data.files): the rest of the key
            # walks into it, e.g. eval.general.copa.limit=50; validation happens when it is built.
            mapping = node[part] = dict(node[part]) if isinstance(node[part], Mapping) else {}
            for name in parts[i + 1 : -1]:
                mapping[name] = dict(mapping[name]) if isinstance(mapping.get(name), Mapping) else {}
                mapping = mapping[name]
            mapping[parts[-1]] = value
            return
        if not is_dataclass(sub):
            raise ConfigError(f"{here!r} is a value, not a section, so {key!r} is not a config key.")
        if not isinstance(node[part], dict):  # replaced by a non-mapping earlier in the same overrides
            raise type_error(here, node[part], "a mapping of keys to values")
        node, cls = node[part], sub
