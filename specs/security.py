"""The `security` section: encryption, access roles, secret references, network policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlc.specs._base import Identifier, SecretRef, StrictModel


class Encryption(StrictModel):
    at_rest: bool = True
    in_transit: bool = True
    kms_key: str | None = None
    """Existing customer-managed key (ARN / resource id); a new key is made when absent."""


class AccessRole(StrictModel):
    role: Identifier
    members: tuple[str, ...] = Field(min_length=1)
    permissions: tuple[
        Literal["read_data", "train", "deploy", "approve", "admin", "view_metrics"], ...
    ] = Field(min_length=1)


class Network(StrictModel):
    ingress: tuple[str, ...] = ()
    """CIDR blocks or namespaces allowed to call the model."""
    egress: tuple[str, ...] = ()
    allow_public: bool = False


class Security(StrictModel):
    encryption: Encryption = Encryption()
    access: tuple[AccessRole, ...] = ()
    secrets: dict[Identifier, SecretRef] = Field(default_factory=dict)
    """Environment variable name -> reference. Values never appear in the spec."""
    network: Network = Network()
    audit_logging: bool = True
