"""Imported once by the import workers' forkserver: load and warm up ``core.data.prepare``
so that every worker forked from it starts with Pillow's plugins and numpy ready."""

from core.data.prepare import _warm_up

_warm_up()
