"""Issues: YAML sources (``source``), the database (``store``), editor operations
(``editor``), resolution into renderable content (``assemble``), pre-send checks
(``preflight``) and previews (``preview``).

Import the submodule you need; this package deliberately imports nothing, so
``newsletter.issues.preflight`` stays free of the database layer.
"""
