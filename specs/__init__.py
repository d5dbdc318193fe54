"""The mlc spec language: pydantic v2 models, one per section, strict and documented."""

from mlc.specs._base import KeyPath, StrictModel, Violation
from mlc.specs.schema import json_schema
from mlc.specs.spec import SECTIONS, Spec

__all__ = ["SECTIONS", "KeyPath", "Spec", "StrictModel", "Violation", "json_schema"]
