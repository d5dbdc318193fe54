"""Names the Terraform target gives its outputs, shared with the manifests that refer to them.

The kserve and k8s targets annotate their ServiceAccounts with the identity that Terraform
creates (IRSA role ARN on aws, service-account email on gcp, managed-identity client id on azure)
and name buckets by these outputs; importing the constants here keeps both sides in step.

>>> identity_output("serving")
'serving_identity'
>>> service_account_name("credit-risk", "serving")
'credit-risk-serving'
"""

from __future__ import annotations

ROLES = ("pipeline", "training", "serving", "monitoring")
"""Workload identities the Terraform target creates, one per role."""

DATA_BUCKET_OUTPUT = "data_bucket"
"""Output: name of the bucket (aws, gcp) or container (azure) holding data."""
ARTIFACTS_BUCKET_OUTPUT = "artifacts_bucket"
"""Output: name of the bucket (aws, gcp) or container (azure) holding models and reports."""
STORAGE_KEY_OUTPUT = "storage_key"
"""Output: id of the customer-managed key that encrypts both buckets."""
ENDPOINT_OUTPUT = "endpoint_name"
"""Output: name of the managed endpoint (only when the platform is sagemaker/vertex/azureml)."""
NAMESPACE_VARIABLE = "k8s_namespace"
"""Variable: Kubernetes namespace whose ServiceAccounts may assume the identities."""

IDENTITY_ANNOTATIONS = {
    "aws": "eks.amazonaws.com/role-arn",
    "gcp": "iam.gke.io/gcp-service-account",
    "azure": "azure.workload.identity/client-id",
}
"""ServiceAccount annotation, per cloud, whose value is the identity output."""


def identity_output(role: str) -> str:
    """Output holding the identity of `role` (role ARN, service-account email or client id)."""
    if role not in ROLES:
        raise ValueError(f"unknown identity role {role!r}; expected one of {', '.join(ROLES)}")
    return f"{role}_identity"


def service_account_name(model_name: str, role: str) -> str:
    """Kubernetes ServiceAccount that the identity of `role` trusts (IRSA / workload identity)."""
    if role not in ROLES:
        raise ValueError(f"unknown identity role {role!r}; expected one of {', '.join(ROLES)}")
    return f"{model_name}-{role}"
