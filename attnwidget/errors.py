"""Errors attnwidget raises for models it cannot show, with the reason and what to do instead."""


class UnsupportedModelError(ValueError):
    """The model has no attention that attnwidget can capture and place, with the reason."""
