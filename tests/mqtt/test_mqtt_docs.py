"""docs/mqtt.md names every event type that the events topic can carry, and no other."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipelines.processing.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]


def _documented_events() -> set[str]:
    """The event types listed in docs/mqtt.md's paragraph on the events topic: the names after its colon,
    leaving out the notes in parentheses (the settings that turn an event on)."""
    text = (ROOT / "docs" / "mqtt.md").read_text()
    paragraph = next(p for p in text.split("\n\n") if p.startswith("**Events**"))
    listed = re.search(r":\s+(`.*)", paragraph, re.DOTALL)
    assert listed is not None, "docs/mqtt.md: the **Events** paragraph no longer lists the types after a colon"
    return set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^()]*\)", "", listed.group(1))))


def _publishable_events() -> set[str]:
    """Every event type the code can publish: the names the events are built from and the schema's enum."""
    schema = json.loads((ROOT / "pipelines" / "schemas" / "event.schema.json").read_text())
    return set(EVENT_TYPES) | set(schema["properties"]["event"]["enum"])


def test_the_docs_name_every_event_type_the_events_topic_carries() -> None:
    documented, publishable = _documented_events(), _publishable_events()
    assert sorted(publishable - documented) == [], "published but not in docs/mqtt.md"
    assert sorted(documented - publishable) == [], "in docs/mqtt.md but never published"
