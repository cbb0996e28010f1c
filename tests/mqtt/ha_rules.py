"""Home Assistant's rules for an MQTT discovery message, as its MQTT integration applies them (2024.3:
``homeassistant/components/mqtt/discovery.py``, ``abbreviations.py``, ``sensor.py``, ``mixins.py``).

HA is far too large to install for the suite, so its checks are written out here; each one says where it
comes from. ``problems(topic, payload, prefix)`` returns what HA would refuse (empty: the entity appears).
"""

from __future__ import annotations

import json
import re
from typing import Any

# discovery.py: the topic under the discovery prefix; anything else ending in "config" is dropped with
# "Received message on illegal discovery topic ... The topic contains not allowed characters".
TOPIC_MATCHER = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")

# abbreviations.py (the subset a sensor can use; a full key is always accepted too)
ABBREVIATIONS = {
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "dev": "device", "dev_cla": "device_class", "ent_cat": "entity_category",
    "en": "enabled_by_default", "exp_aft": "expire_after", "frc_upd": "force_update", "ic": "icon",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template", "lrst_t": "last_reset_topic",
    "lrst_val_tpl": "last_reset_value_template", "name": "name", "o": "origin", "obj_id": "object_id",
    "pl_avail": "payload_available", "pl_not_avail": "payload_not_available", "qos": "qos",
    "stat_cla": "state_class", "stat_t": "state_topic", "sug_dsp_prc": "suggested_display_precision",
    "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
    "enc": "encoding", "opts": "options",
}
DEVICE_ABBREVIATIONS = {"cns": "connections", "ids": "identifiers", "name": "name", "mf": "manufacturer",
                        "mdl": "model", "hw": "hw_version", "sw": "sw_version", "sa": "suggested_area",
                        "cu": "configuration_url", "via_device": "via_device", "sn": "serial_number"}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
SENSOR_KEYS = set(ABBREVIATIONS.values())
STATE_CLASSES = {"measurement", "total", "total_increasing"}


def _expand(doc: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table.get(k, k): v for k, v in doc.items()}


def _topic_problem(key: str, topic: Any) -> list[str]:
    """util.valid_subscribe_topic: a non-empty UTF-8 string under 65536 bytes, no NUL, wildcards whole levels."""
    if not isinstance(topic, str) or not topic:
        return [f"{key}: not a topic"]
    if "\0" in topic or len(topic.encode()) > 65535:
        return [f"{key}: not a valid MQTT topic"]
    if any(("+" in level and level != "+") or ("#" in level and level != "#") for level in topic.split("/")):
        return [f"{key}: wildcard inside a level"]
    return []


def _template_problem(key: str, template: Any, payload: bytes | None) -> list[str]:
    """HA renders templates with Jinja2 (sandboxed), ``value`` the payload and ``value_json`` its JSON."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        compiled = ImmutableSandboxedEnvironment().from_string(template)
    except Exception as exc:  # noqa: BLE001 - any syntax error is what HA would refuse
        return [f"{key}: {exc}"]
    if payload is None:
        return []
    text = payload.decode()
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    rendered = compiled.render(value=text, value_json=value_json)
    if rendered.strip() in ("", "None"):
        return [f"{key}: renders to nothing on {text[:80]!r}"]
    return []


def problems(topic: str, payload: bytes, prefix: str = "homeassistant",
             retained: dict[str, bytes] | None = None) -> list[str]:
    """Why HA would refuse this discovery message (``[]`` when it takes it); ``retained`` (topic -> payload)
    also checks that every template renders a value from what its topic holds."""
    found: list[str] = []
    if not topic.startswith(prefix + "/"):
        return [f"{topic}: not under {prefix}/"]
    match = TOPIC_MATCHER.fullmatch(topic[len(prefix) + 1:])
    if match is None:
        return [f"{topic}: The topic contains not allowed characters"]
    if match["component"] != "sensor":
        found.append(f"{topic}: trackstream only announces sensors")
    try:
        doc = _expand(json.loads(payload), ABBREVIATIONS)
    except ValueError:
        return [f"{topic}: payload is not JSON"]
    if "~" in doc:  # discovery.py: a leading/trailing ~ in a *_topic key is the base topic
        base = doc.pop("~")
        for key, value in list(doc.items()):
            if key.endswith("_topic") and isinstance(value, str):
                doc[key] = value.replace("~", base)
    unknown = set(doc) - SENSOR_KEYS
    if unknown:
        found.append(f"{topic}: keys HA does not know for a sensor: {sorted(unknown)}")
    if "state_topic" not in doc:
        found.append(f"{topic}: state_topic is required")
    for key in ("state_topic", "availability_topic", "json_attributes_topic"):
        if key in doc:
            found.extend(_topic_problem(key, doc[key]))
    if "state_class" in doc and doc["state_class"] not in STATE_CLASSES:
        found.append(f"{topic}: state_class {doc['state_class']!r}")
    if "icon" in doc and (not isinstance(doc["icon"], str) or ":" not in doc["icon"]):
        found.append(f"{topic}: icon must be prefix:name")
    if "device" in doc:   # mixins.py MQTT_ENTITY_DEVICE_INFO_SCHEMA + validate_device_has_at_least_one_identifier
        device = _expand(doc["device"], DEVICE_ABBREVIATIONS)
        if not (device.get("identifiers") or device.get("connections")):
            found.append(f"{topic}: device needs identifiers or connections")
        if set(device) - set(DEVICE_ABBREVIATIONS.values()):
            found.append(f"{topic}: unknown device keys {sorted(set(device) - set(DEVICE_ABBREVIATIONS.values()))}")
        if "unique_id" not in doc:   # an entity with device info and no unique_id is not added to the device
            found.append(f"{topic}: device info needs unique_id")
    if "origin" in doc:   # MQTT_ORIGIN_INFO_SCHEMA: name required
        origin = _expand(doc["origin"], ORIGIN_ABBREVIATIONS)
        if not isinstance(origin.get("name"), str):
            found.append(f"{topic}: origin needs a name")
    for key in ("value_template", "availability_template"):
        if key in doc:
            source = doc.get("state_topic" if key == "value_template" else "availability_topic")
            held = None if retained is None else retained.get(source) if isinstance(source, str) else None
            if retained is not None and held is None:
                found.append(f"{topic}: nothing retained on {source!r} for {key}")
            found.extend(f"{topic}: {p}" for p in _template_problem(key, doc[key], held))
    return found
