"""Spec metadata: what the system is called, who owns it, which language version it speaks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlc.specs._base import Name, StrictModel

API_VERSION = "mlc/v1"


class Metadata(StrictModel):
    """Fields shared by every spec at its top level (kept flat there for readability)."""

    api_version: Literal["mlc/v1"] = Field(API_VERSION, alias="apiVersion")
    name: Name
    description: str = ""
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
