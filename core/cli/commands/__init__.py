"""Command handlers of ``python -m core``, one module per command group.

A group's parser (``core/cli/<group>.py``) names its handlers as
``"core.cli.commands.<group>:cmd_<name>"``; ``core.cli.main`` imports the handler
module only when its command runs. So these modules import the engine (and torch)
at the top, while ``--help`` and argument errors answer without loading it.
"""
