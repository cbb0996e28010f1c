"""The built-in live web view (``trackstream run ... --http [HOST:]PORT``); see ``docs/web.md``.

- ``config``: the ``http:`` section (``HttpConfig``).
- ``viewer``: the ``viewer`` sink: keeps the newest result of each source in a slot, never waits.
- ``status``: the JSON status of a source (state, rates, latency, tracks, counts, events).
- ``server``: the HTTP server (aiohttp, in its own thread): page, live pictures, status, events, metrics.

Only ``config`` and ``viewer`` are imported by the pipeline core; the server library loads when a run serves.
"""
