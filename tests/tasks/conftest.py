"""Fixtures of the task tests: the REFER-layout refCOCOg tree of the data tests (one 20 x 28 image, two training
sentences of one polygon target, a validation sentence of an RLE target)."""

from tests.data.conftest import refcocog_tree  # noqa: F401  (a session fixture, reused as it is)
