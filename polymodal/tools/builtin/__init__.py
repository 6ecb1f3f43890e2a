"""The built-in tools, one module each (the emotion tool a subpackage of its own).

An internal package: import the tools from :mod:`polymodal.tools` (``from polymodal.tools import
Captioner``), which loads only the module of the tool asked for.
"""

__all__: list[str] = []  # internal package (docs/api.md): import public names from polymodal or polymodal.tools
