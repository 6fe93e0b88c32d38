"""The committed JSON Schema of every event version, and the rules a change must keep.

``contracts/events/<EventType>.v<N>.json`` is generated from the payload
models in ``shop_common.messaging.events`` (``make contracts``) and committed, so a
reviewer sees every contract change as a diff and other languages can read
the contracts. Within one version only compatible changes are allowed: a new
optional field. A removed or retyped field, or a newly required one, needs a
new version (and an upcaster). ``python -m shop_common.messaging.event_contracts write``
refuses to overwrite a committed schema with an incompatible one.
"""
import json
import sys
from pathlib import Path

from shop_common.messaging import events

CONTRACTS_DIR = Path(__file__).parent / "contracts" / "events"


def file_name(event_type, version):
    return f"{event_type}.v{version}.json"


def generated():
    """{file name: JSON Schema} for every (type, version) the code knows."""
    schemas = {}
    for (event_type, version), model in sorted(events.PAYLOADS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://shop.local/contracts/events/{file_name(event_type, version)}"
        schema["title"] = f"{event_type} v{version}"
        schemas[file_name(event_type, version)] = schema
    return schemas


def committed(directory=CONTRACTS_DIR):
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def render(schema):
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        schema = root.get("$defs", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _types(schema, root):
    """The JSON types a (resolved) schema admits, nullable unions included."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return set().union(*(_types(option, root) for option in schema["anyOf"]))
    if "type" in schema:
        return {schema["type"]} if isinstance(schema["type"], str) else set(schema["type"])
    if "enum" in schema or "const" in schema:
        return {"enum"}
    return {"any"}


def incompatibilities(old, new, path="payload", old_root=None, new_root=None):
    """What makes ``new`` unable to read every message valid under ``old``, or old readers to read new
    messages: fields removed, retyped, or newly required. Nested objects and array items are compared too."""
    old_root, new_root = old_root or old, new_root or new
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    problems = []
    if _types(old, old_root) != _types(new, new_root):
        return [f"{path}: type {sorted(_types(old, old_root))} became {sorted(_types(new, new_root))}"]
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in sorted(set(old_props) - set(new_props)):
        problems.append(f"{path}.{name}: removed")
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"{path}.{name}: now required")
    for name in sorted(set(old_props) & set(new_props)):
        problems += incompatibilities(old_props[name], new_props[name], f"{path}.{name}", old_root, new_root)
    if "items" in old and "items" in new:
        problems += incompatibilities(old["items"], new["items"], f"{path}[]", old_root, new_root)
    for key, old_option in enumerate(old.get("anyOf", [])):
        new_options = new.get("anyOf", [])
        if key < len(new_options):
            problems += incompatibilities(old_option, new_options[key], path, old_root, new_root)
    return problems


def stale(directory=CONTRACTS_DIR):
    """Files that differ from the models, are missing, or describe versions the code no longer knows."""
    want, have = generated(), committed(directory)
    return sorted(name for name in set(want) | set(have) if want.get(name) != have.get(name))


def write(directory=CONTRACTS_DIR):
    """Regenerate the committed schemas; refuse (exit 1) an incompatible change within a version."""
    directory.mkdir(parents=True, exist_ok=True)
    have = committed(directory)
    refused = {name: incompatibilities(have[name], schema)
               for name, schema in generated().items() if name in have}
    refused = {name: problems for name, problems in refused.items() if problems}
    if refused:
        for name, problems in refused.items():
            print(f"{name}: incompatible change; add a new version with an upcaster instead:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
        return 1
    for name, schema in generated().items():
        (directory / name).write_text(render(schema))
    for name in set(have) - set(generated()):
        print(f"{name}: no model for it any more; delete the file to retire that version (only once no "
              f"producer sends it and no stored event holds it)", file=sys.stderr)
    print(f"{len(generated())} event schemas in {directory}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["write"]:
        sys.exit(write())
    if sys.argv[1:] == ["check"]:
        differing = stale()
        print("\n".join(differing) or "every event schema is up to date")
        sys.exit(1 if differing else 0)
    print("usage: python -m shop_common.messaging.event_contracts write|check", file=sys.stderr)
    sys.exit(2)
