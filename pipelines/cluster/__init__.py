"""Scale-out on Ray (``--engine ray``, ``trackstream cluster``): see docs/cluster.md.

Only ``config`` is imported by the rest of trackstream without Ray; everything else imports Ray lazily
through ``ray_env.import_ray`` (one clear line when the ``ray`` extra is missing).
"""
