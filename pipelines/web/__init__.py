"""The built-in live web view (``trackstream run ... --http [HOST:]PORT``); see ``docs/web.md``.

- ``config``: the ``http:`` section (``HttpConfig``).
- ``status``: the JSON status of a source (state, rates, latency, tracks, counts, events), read from the
  engine's read-only view (``pipelines/engine/view.py``) and the ``viewer`` sink (``pipelines/sinks/viewer.py``,
  which keeps the newest result of each source in a slot and never waits).
- ``server``: the HTTP server (aiohttp, in its own thread): page, live pictures, status, events, metrics.

Only ``config`` is imported by the pipeline core (for the config section); the server library loads when a run
serves.
"""
