"""Pages of ``docs/`` generated from the code, so they cannot drift: ``configuration.md`` from
``Settings`` and ``api.md`` from the service's OpenAPI document.

``python -m opslab.docgen`` (``make docs``) writes them; ``--check`` exits 1 when a committed page differs.
"""

from opslab.docgen.api_reference import render_api
from opslab.docgen.configuration import render_configuration, variable_names
from opslab.docgen.pages import GENERATED_PAGES, stale_pages, write_pages

__all__ = [
    "GENERATED_PAGES",
    "render_api",
    "render_configuration",
    "stale_pages",
    "variable_names",
    "write_pages",
]
