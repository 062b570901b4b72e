"""Read a YAML file a person wrote: one mapping, no key twice, every failure one line with the fix."""

from __future__ import annotations

from pathlib import Path

import yaml

from inspection.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML allows a key twice and keeps the last: in a config that silently drops a setting."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges shared settings; explicit keys may override them
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # an unhashable key: SafeLoader's own check reports it
            if key in seen:
                raise ConfigError(f"the key {key!r} appears twice at line {key_node.start_mark.line + 1}; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml_mapping(path: Path, what: str, hint: str, error: type[ConfigError] = ConfigError) -> dict:
    """The mapping in `path`, a `what` (e.g. "station config"); `hint` says where examples are.
    Failures raise `error`, a ConfigError the caller's command reports as its own."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except ConfigError as exc:
        raise error(f"{path}: {exc}.") from None
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist. Pass the path of a YAML file ({hint}).") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder. Pass the path of a YAML file ({hint}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise error(f"{path} is not valid YAML{where}. Fix the syntax.") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text. Save the {what} as UTF-8.") from None
    if not isinstance(raw, dict):
        raise error(f"{path} must hold a mapping of settings. {hint[0].upper()}{hint[1:]}.")
    return raw
