"""The OpenAPI 3 document of the web view's history API and its live heatmaps (served at ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pipelines.processing.events import EVENT_TYPES

EVENT_KINDS = list(EVENT_TYPES)   # every event the history can hold (zone_dwell, crossing_predicted, ... included)


def _query(name: str, description: str, schema: dict[str, Any], many: bool = False) -> dict[str, Any]:
    if many:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            **({"style": "form", "explode": True} if many else {})}


_TIME = {"type": "string", "example": "2h"}
_MEDIA = {"type": "object", "nullable": True, "required": ["url", "available", "state"],
          "properties": {"url": {"type": "string", "example": "/media/cam1/20261206/clip-3-020112-100001.mp4"},
                         "available": {"type": "boolean", "description": "the file is served now (state ready)"},
                         "state": {"type": "string", "enum": ["ready", "pending", "deleted", "missing"],
                                   "description": "ready: served; pending: not written yet (a clip is encoded "
                                                  "once its post-event part is recorded; ask again); deleted: "
                                                  "written, then deleted by media retention (the row stays; "
                                                  "also one due before the store recorded its files); "
                                                  "missing: never written (the run stopped first, or a full "
                                                  "disk)"}}}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_ERROR = {"description": "bad parameter", "content": _json("Error")}
_AUTH = {"description": "the view's token is missing or wrong"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "trackstream history API", "version": "1",
             "description": "Events and tracks stored by `trackstream run --db`, with their snapshots and clips. "
                            "Times are Unix seconds; `since`/`until` also take `2h` (ago) or ISO 8601 times."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "the --http-token (also ?token= once, then a cookie)"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Media": _MEDIA,
            "Event": {"type": "object",
                      "required": ["id", "source_id", "event", "time", "clip", "snapshot", "document"],
                      "properties": {
                          "id": {"type": "integer"}, "source_id": {"type": "string"},
                          "event": {"type": "string", "enum": EVENT_KINDS}, "time": {"type": "number"},
                          "pts": {"type": "number", "nullable": True},
                          "track_id": {"type": "integer", "nullable": True},
                          "class_name": {"type": "string", "nullable": True},
                          "zone": {"type": "string", "nullable": True}, "line": {"type": "string", "nullable": True},
                          "direction": {"type": "string", "nullable": True},
                          "clip": {"$ref": "#/components/schemas/Media"},
                          "snapshot": {"$ref": "#/components/schemas/Media"},
                          "track_url": {"type": "string"},
                          "document": {"type": "object",
                                       "description": "the event document (pipelines/schemas/event.schema.json)"}}},
            "EventPage": {"type": "object", "required": ["events", "next"],
                          "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                         "next": {"type": "string", "nullable": True,
                                                  "description": "cursor of the next (older) page"}}},
            "Track": {"type": "object",
                      "required": ["source_id", "track_id", "class_name", "first_time", "last_time", "zones",
                                   "lines", "path", "best_confidence", "snapshot", "clips", "events"],
                      "properties": {
                          "source_id": {"type": "string"}, "track_id": {"type": "integer"},
                          "class_id": {"type": "integer"}, "class_name": {"type": "string"},
                          "first_time": {"type": "number"}, "last_time": {"type": "number"},
                          "first_pts": {"type": "number", "nullable": True},
                          "last_pts": {"type": "number", "nullable": True},
                          "first_stream_time": {"type": "number", "nullable": True},
                          "last_stream_time": {"type": "number", "nullable": True},
                          "frames_seen": {"type": "integer"}, "best_confidence": {"type": "number"},
                          "zones": {"type": "object", "additionalProperties": {
                              "type": "object", "properties": {"entries": {"type": "integer"},
                                                               "seconds": {"type": "number"}}}},
                          "lines": {"type": "array", "items": {"type": "object"}},
                          "path": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                                   "description": "[pts, x, y] points, downsampled"},
                          "snapshot": {"$ref": "#/components/schemas/Media"},
                          "snapshot_frame": {"$ref": "#/components/schemas/Media"},
                          "clips": {"type": "array", "items": {"$ref": "#/components/schemas/Media"}},
                          "events": {"type": "array", "items": {"type": "object"}},
                          "ended": {"type": "boolean"},
                          "end_reason": {"type": "string", "nullable": True,
                                         "description": "removed, stream_ended, or interrupted: its run stopped "
                                                        "while it was alive (end time unknown; last_time: when "
                                                        "last stored)"},
                          "earlier": {"type": "integer",
                                      "description": "older stored tracks of this source with the same id"}}},
        },
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/api/events": {"get": {
            "summary": "stored events, newest first",
            "description": "A request with Accept: text/event-stream gets the live status stream instead.",
            "parameters": [
                _query("source", "source id (repeatable)", {"type": "string"}, many=True),
                _query("since", "from this time", _TIME), _query("until", "up to this time", _TIME),
                _query("type", "event kind (repeatable)", {"type": "string", "enum": EVENT_KINDS}, many=True),
                _query("class", "class name of the track", {"type": "string"}),
                _query("zone", "zone name", {"type": "string"}), _query("line", "line name", {"type": "string"}),
                _query("track", "track id", {"type": "integer"}),
                _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
                _query("cursor", "the `next` of the previous page", {"type": "string"})],
            "responses": {"200": {"description": "a page of events", "content": _json("EventPage")},
                          "400": _ERROR, "401": _AUTH}}},
        "/api/tracks/{source}/{id}": {"get": {
            "summary": "a stored track with its events, snapshot and clips",
            "parameters": [{"name": "source", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           _query("at", "the track with this id alive at this time (ids start again in a new run; "
                                  "an event's track_url carries its time)", _TIME)],
            "responses": {"200": {"description": "the newest stored track with this id (with at: the one that "
                                                 "started last at or before it)", "content": _json("Track")},
                          "404": {"description": "no such track"}, "401": _AUTH}}},
        "/api/history/sources": {"get": {
            "summary": "every source the store knows (with stored events or tracks)",
            "responses": {"200": {"description": "source ids", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"sources": {"type": "array", "items": {"type": "string"}}}}}}},
                "401": _AUTH}}},
        "/api/heatmap/{source}.png": {"get": {
            "summary": "where tracks' ground points were: the source's heatmap over its newest picture (PNG)",
            "description": "Needs the source's heatmap on (heatmap.enabled, --heatmap FILE or --heatmap-overlay). "
                           "Blue where tracks stood seldom, red where most; the picture shows through elsewhere. "
                           "X-Heatmap-Frames says how many frames it holds.",
            "parameters": [{"name": "source", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "source id, URL-encoded (cam%2F1)"},
                           _query("class", "one class's heatmap (a class name the source has seen)",
                                  {"type": "string"})],
            "responses": {"200": {"description": "the heatmap", "content": {"image/png": {"schema": {
                "type": "string", "format": "binary"}}}},
                          "400": {"description": "no heat of that class (the classes seen are listed)"},
                          "404": {"description": "no such source, or its heatmap is off"},
                          "503": {"description": "no picture yet"}, "401": _AUTH}}},
        "/media/{path}": {"get": {
            "summary": "a snapshot (image/jpeg) or clip (video/mp4, range requests) from the media folder",
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file"},
                          "404": {"description": "no such media file (or deleted by retention)"}, "401": _AUTH}}},
    },
}
