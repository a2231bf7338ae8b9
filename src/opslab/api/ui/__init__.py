"""The dashboard at ``/ui``: runs, a run's timeline and RCA, experiments, canaries, incidents, builds.

Server-rendered HTML (Jinja2) over the same runtime as the JSON API, with the same auth; every list is
filtered and paginated in SQL or read a page at a time. ``install(app)`` mounts it. Static files (the
stylesheet, ``app.js`` and the vendored htmx) ship in the package: no build step, no CDN.
"""
