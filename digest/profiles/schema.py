"""The JSON Schema of a profile file, published for editors to check as people type."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .model import Profile
from .yamlio import write_atomically


def profile_json_schema() -> dict[str, Any]:
    """JSON Schema of a profile *file*, for editors (yaml-language-server) to check as people type.

    It is the model's schema less `name` (which comes from the file name), with bare strings
    allowed as interests.
    """
    schema = Profile.model_json_schema()
    schema["properties"].pop("name")
    schema["required"].remove("name")
    schema["properties"]["interests"]["items"] = {
        "anyOf": [
            {"$ref": "#/$defs/Interest"},
            {"type": "string", "minLength": 1, "description": "Name and text of an interest."},
        ]
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "digest profile",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def write_schema(path: str | os.PathLike[str]) -> Path:
    """Write `profile_json_schema` to `path` (conventionally ``profiles/profile.schema.json``)."""
    path = Path(path)
    text = json.dumps(profile_json_schema(), indent=2, ensure_ascii=False) + "\n"
    write_atomically(path, text)
    return path


# -- reading ------------------------------------------------------------------------------------
