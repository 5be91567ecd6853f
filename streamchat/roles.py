"""Roles: named presets of system prompt, model, sampling and a prompt template.

Built in (`shell`, `code`, `explain`), then `[roles.NAME]` in the config, then files in the
config dir's `roles/` folder (TOML, or Markdown whose body is the system prompt after a TOML
front matter between `+++` or `---` lines); a later source overrides an earlier one by name.
Flags still win over a role, and a role over the config's defaults.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamchat.config import MAX_TOKENS, Settings, range_text
from streamchat.errors import ConfigError, UsageError
from streamchat.paths import config_dir
from streamchat.private_files import write_private

if TYPE_CHECKING:
    from streamchat.schema_request import ResponseSchema
    from streamchat.service import Overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KEYS = {"system", "model", "temperature", "max_tokens", "template", "description", "schema", "options", "reasoning"}
REASONING = ("off", "low", "medium", "high")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Role:
    name: str
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    template: str | None = None
    source: str = "built-in"
    schema: str | None = None  # answers are JSON matching it: --schema's SCHEMA (a TOML table is a JSON Schema)
    options: tuple[tuple[str, Any], ...] = ()  # provider options (as -o), checked against the model's provider per turn
    reasoning: str | None = None  # as --reasoning

    def response_schema(self, *, multi: bool = False) -> ResponseSchema | None:
        """The role's schema as the request asks for it (a bad one is a UsageError naming the role)."""
        if self.schema is None:
            return None
        from streamchat.schema import load_schema

        return load_schema(self.schema, multi=multi, option=f"role '{self.name}': schema").request

    def apply(self, text: str, params: dict[str, str], fill: Callable[[list[str]], str] | None = None) -> str:
        """The template with `{{input}}` and the named placeholders filled; no template: the text.
        `fill` says how to pass the missing names where the user is (default: the -p flags)."""
        if not self.template:
            return text
        values = {"input": text, **params}
        missing = self.missing(values)
        if missing:
            raise UsageError(f"role '{self.name}' needs a value for " + ", ".join(f"{{{{{m}}}}}" for m in missing),
                             hint="pass " + (fill or cli_fill)(missing))
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)

    def missing(self, params: dict[str, str]) -> list[str]:
        """The template's placeholders (other than {{input}}) that `params` leaves unfilled."""
        return sorted({m for m in PLACEHOLDER.findall(self.template or "") if m not in params and m != "input"})

    def summary(self) -> str:
        first = (self.system or "").strip().splitlines()[0] if (self.system or "").strip() else "(no system prompt)"
        return first if len(first) <= 70 else first[:69] + "…"


def cli_fill(names: list[str]) -> str:
    """How the command line fills placeholders: `-p focus=… -p lang=…`."""
    return " ".join(f"-p {name}=…" for name in names)


def parse_params(items: list[str], example: str) -> dict[str, str]:
    """NAME=VALUE items (-p's values, or the words after /role NAME) as a dict; `example` shows the form."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{item!r} is not NAME=VALUE", hint=f"e.g. {example}")
        out[name] = value
    return out


BUILTIN = {
    "shell": Role("shell", system=(
        "You turn requests into shell commands. Answer with exactly one command for a POSIX shell in a "
        "```sh fenced block, and nothing else: no explanation. Prefer safe, non-destructive commands.")),
    "code": Role("code", system=(
        "Answer with code only, in one fenced code block with its language. No prose before or after; "
        "comments in the code only where they help.")),
    "explain": Role("explain", system=(
        "Explain concisely: the short answer first, then the key points in a few bullets. No filler.")),
}


def roles_dir() -> Path:
    return config_dir() / "roles"


def _from_table(name: str, table: dict[str, Any], source: str) -> Role:
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(f"{source}: role '{name}' has an unknown key '{unknown[0]}'",
                          hint="keys: system, model, temperature, max_tokens, template, description, schema, "
                               "options, reasoning")
    for key, kind in (("system", str), ("model", str), ("template", str)):
        if key in table and not isinstance(table[key], kind):
            raise ConfigError(f"{source}: role '{name}': '{key}' must be a string")
    temperature = table.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not math.isfinite(temperature) or not 0 <= temperature <= 2):
        raise ConfigError(f"{source}: role '{name}': 'temperature' must be from 0 to 2")
    max_tokens = table.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or not 1 <= max_tokens <= MAX_TOKENS):
        over = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > MAX_TOKENS
        raise ConfigError(f"{source}: role '{name}': 'max_tokens' must be {range_text(1, MAX_TOKENS, 2**63 if over else 0)}")
    schema = table.get("schema")
    if schema is not None and not isinstance(schema, (str, dict)):
        raise ConfigError(f"{source}: role '{name}': 'schema' must be a string (like --schema's) or a table (a JSON Schema)")
    if isinstance(schema, dict):
        schema = json.dumps(schema)
    options, reasoning = table.get("options", {}), table.get("reasoning")
    if not isinstance(options, dict):
        raise ConfigError(f"{source}: role '{name}': 'options' must be a table, e.g. options = {{ top_p = 0.9 }}")
    if reasoning is not None and reasoning not in REASONING:
        raise ConfigError(f"{source}: role '{name}': 'reasoning' must be one of {', '.join(REASONING)}")
    return Role(name, table.get("system"), table.get("model"),
                None if temperature is None else float(temperature), max_tokens, table.get("template"), source, schema,
                tuple(options.items()), reasoning)


def check_tables(settings: Settings) -> None:
    """The config's [roles.NAME] tables, checked when the CLI loads the config (not first when used)."""
    for name, table in settings.roles.items():
        _from_table(name, table, str(settings.path) if settings.path else "config")


def _from_file(path: Path) -> Role:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            return _from_table(path.stem, tomllib.loads(text), str(path))
        lines = text.splitlines()
        if lines and lines[0].strip() in ("+++", "---"):
            fence = lines[0].strip()
            end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == fence), None)
            if end is None:
                raise ConfigError(f"{path}: the front matter opened by {fence} is never closed")
            table = tomllib.loads("\n".join(lines[1:end]))
            body = "\n".join(lines[end + 1:]).strip()
        else:
            table, body = {}, text.strip()
        if body:
            table.setdefault("system", body)
        return _from_table(path.stem, table, str(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint="front matter is TOML: key = \"value\"") from None


def load_roles(settings: Settings) -> dict[str, Role]:
    roles = dict(BUILTIN)
    where = str(settings.path) if settings.path else "config"
    for name, table in settings.roles.items():
        roles[name] = _from_table(name, table, where)
    folder = roles_dir()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix in (".toml", ".md") and path.is_file():
                roles[path.stem] = _from_file(path)
    return roles


def role_names(settings: Settings) -> list[str]:
    """Every role's name, sorted, without reading any role file (Tab, a hint)."""
    folder = roles_dir()
    files = [p.stem for p in folder.iterdir() if p.suffix in (".toml", ".md") and p.is_file()] if folder.is_dir() else []
    return sorted({*BUILTIN, *settings.roles, *files})


def get_role(settings: Settings, name: str) -> Role:
    """The role `name`, as load_roles would give it, reading only its own file: another role's broken
    file made every `-r` (the built-ins too) exit 3."""
    folder = roles_dir()
    plain = name == Path(name).name and not name.startswith(".")  # a name, never a path out of roles/
    files = sorted(p for p in (folder / f"{name}.md", folder / f"{name}.toml") if p.is_file()) if plain else []
    if files:
        return _from_file(files[-1])  # load_roles's order: a later file of the same stem wins
    if name in settings.roles:
        return _from_table(name, settings.roles[name], str(settings.path) if settings.path else "config")
    if name in BUILTIN:
        return BUILTIN[name]
    raise UsageError(f"no role named '{name}'", hint=f"roles: {', '.join(role_names(settings))} (streamchat roles)")


def under_flags(role: Role, overrides: Overrides) -> Overrides:
    """The flags' Overrides with the role filling what the flags left unset (flags > role > config)."""
    from streamchat.service import pick

    return replace(overrides, model=overrides.model or role.model, system=pick(overrides.system, role.system),
                   temperature=pick(overrides.temperature, role.temperature),
                   max_tokens=pick(overrides.max_tokens, role.max_tokens),
                   schema=overrides.schema or role.response_schema(),
                   params=role.options + overrides.params, reasoning=pick(overrides.reasoning, role.reasoning))


EXAMPLES = {"model": '"openai:gpt-4o-mini"', "temperature": "0.2", "max_tokens": "800",
            "template": '"Review this for {{focus}}:\\n\\n{{input}}"   # -p focus=security'}


def check_name(name: str) -> None:
    """A role name is a file name in roles/: nothing that could leave the folder."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise UsageError(f"'{name}' is not a usable role name", hint="use letters, digits, - _ .")


def role_files(name: str) -> list[Path]:
    folder = roles_dir()
    return [p for p in (folder / f"{name}.md", folder / f"{name}.toml") if p.is_file()]


def role_text(role: Role, comment: str) -> str:
    """A role as a roles/NAME.md file: its settings as TOML front matter (the unset ones as commented
    examples), its system prompt as the body."""
    lines = ["+++", f"# {comment}", "# Every key is optional; the text below the +++ line is the system prompt."]
    for key, example in EXAMPLES.items():
        value = getattr(role, key)
        lines.append(f"{key} = {_toml_value(value)}" if value is not None else f"# {key} = {example}")
    return "\n".join([*lines, "+++", (role.system or "").strip()]) + "\n"


def edit_role(settings: Settings, name: str) -> Path | None:
    """`roles edit NAME`: the user's file for NAME in the editor, else a new one starting from the role
    as it is now (built in, or `[roles.NAME]` in the config), else from a commented skeleton. Written
    only when the editor saved a change: the path, or None."""
    check_name(name)
    files = role_files(name)
    if files:
        path, seed = files[0], files[0].read_text(encoding="utf-8")
    else:
        path = roles_dir() / f"{name}.md"
        if name in settings.roles:
            where = settings.path or "the config"
            seed = role_text(_from_table(name, settings.roles[name], str(where)),
                             f"Role '{name}' from [roles.{name}] in {where}; saved, this file takes its place.")
        elif name in BUILTIN:
            seed = role_text(BUILTIN[name], f"The built-in role '{name}'; saved, this file takes its place "
                                            f"(streamchat roles rm {name} brings the built-in back).")
        else:
            seed = role_text(Role(name, system="You are a helpful assistant."), f"A streamchat role: '{name}'.")
    from streamchat.editor import edit_text

    text = edit_text(seed, suffix=path.suffix, unused="nothing was saved")
    if text == seed or not text.strip():
        return None
    write_private(path, text)
    return path


def remove_role(settings: Settings, name: str) -> list[Path]:
    """`roles rm NAME`: delete the user's role files for NAME (a built-in of that name applies again)."""
    check_name(name)
    files = role_files(name)
    if not files:
        if name in settings.roles:
            raise UsageError(f"role '{name}' is not a file: it is [roles.{name}] in {settings.path or 'the config'}",
                             hint="remove that table from the config")
        if name in BUILTIN:
            raise UsageError(f"'{name}' is a built-in role; there is no file of yours to remove")
        raise UsageError(f"no role file named '{name}' in {roles_dir()}", hint="streamchat roles lists them")
    for path in files:
        path.unlink()
    return files


def given_role(name: str, overrides: Overrides, chosen: Role | None, params: dict[str, str],
               options: tuple[tuple[str, Any], ...] = ()) -> Role:
    """What --save-role keeps: the flags over the -r role (as the request gets them), and the role's
    template with the -p values given filled in (the others, and {{input}}, stay placeholders)."""
    template = chosen.template if chosen is not None else None
    if template and params:
        template = PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)) if m.group(1) != "input"
                                   else m.group(0), template)
    schema = overrides.schema.schema if overrides.schema is not None else None  # --schema's, else -r's
    return Role(name, system=overrides.system, model=overrides.model, temperature=overrides.temperature,
                max_tokens=overrides.max_tokens, template=template, source="",
                schema=json.dumps(schema, ensure_ascii=False) if schema is not None else None,
                options=options, reasoning=overrides.reasoning)


def save_role(settings: Settings, role: Role, *, force: bool = False) -> Path:
    """--save-role: `role` as roles/NAME.toml. A built-in name is refused (`roles edit` changes
    one), an existing role is replaced only with `force`, and an empty role is not written."""
    name = role.name
    check_name(name)
    if name in BUILTIN:
        raise UsageError(f"'{name}' is a built-in role; a saved role would hide it",
                         hint=f"pick another name, or change the built-in with: streamchat roles edit {name}")
    existing = role_files(name)
    if (existing or name in settings.roles) and not force:
        where = existing[0] if existing else f"[roles.{name}] in {settings.path or 'the config'}"
        raise UsageError(f"role '{name}' already exists ({where})", hint="add --force to replace it, or pick another name")
    lines = [f"{key} = {_toml_value(getattr(role, key))}" for key in ("system", "model", "temperature", "max_tokens",
                                                                      "template", "schema", "reasoning")
             if getattr(role, key) is not None]
    if role.options:
        lines.append(f"options = {_toml_value(dict(role.options))}")
    if not lines:
        raise UsageError(f"nothing to save as role '{name}'",
                         hint="give -s, -m, --temperature, --max-tokens, --schema, -o, --reasoning or -r ROLE")
    path = roles_dir() / f"{name}.toml"
    write_private(path, "\n".join(lines) + "\n")
    for other in existing:
        if other != path:
            other.unlink()  # NAME.md beside the new NAME.toml would be a second, stale definition
    return path


def _toml_value(value: object) -> str:
    """A TOML value: JSON's form of strings, numbers, booleans and arrays is TOML's too; an object
    is an inline table."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (str, bool, int, float)):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)
