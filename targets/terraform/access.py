"""Least-privilege permissions per cloud: workload identities and `security.access` roles.

Each workload identity (pipeline, training, serving, monitoring) gets only the bucket access
its job needs; each access role's permissions (`read_data`, `train`, …) map to the narrowest
grant the cloud has. Values that are Terraform references are `Expr`s.
"""

from __future__ import annotations

from typing import Any

from mlc.compiler.diagnostics import Diagnostic
from mlc.targets.terraform.hcl import Expr, Template

MEMBER_KINDS = {
    "aws": ("group", "user", "role"),
    "gcp": ("group", "user", "serviceAccount", "domain"),
    "azure": ("group", "user", "servicePrincipal"),
}
"""Member prefixes (`group:risk-ds`) each cloud can bind a policy to."""

# -- aws: IAM policy statements -------------------------------------------------------------------

_B = {"data": "aws_s3_bucket.data.arn", "artifacts": "aws_s3_bucket.artifacts.arn"}


def _objects(bucket: str, prefix: str = "") -> str:
    return "${" + _B[bucket] + "}/" + prefix + "*"


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    res: list[Any] = [
        Template(r) if "${" in r else r if r.startswith(("arn:", "*")) else Expr(r)
        for r in resources
    ]
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": res[0] if len(res) == 1 else res,
    }


def _kms(write: bool) -> dict[str, Any]:
    actions = ["kms:Decrypt", "kms:DescribeKey"] + (["kms:GenerateDataKey"] if write else [])
    return _statement("UseStorageKey", actions, ["local.kms_key_arn"])


def aws_role_statements(role: str, cmk: bool, model_name: str) -> list[dict[str, Any]]:
    """IAM statements for a workload identity: only the buckets and prefixes its job touches."""
    rw = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    list_both = _statement("ListBuckets", ["s3:ListBucket"], [_B["data"], _B["artifacts"]])
    if role == "pipeline":
        out = [
            list_both,
            _statement("ReadWriteObjects", rw, [_objects("data"), _objects("artifacts")]),
        ]
    elif role == "training":
        out = [
            list_both,
            _statement("ReadData", ["s3:GetObject"], [_objects("data")]),
            _statement("WriteArtifacts", ["s3:GetObject", "s3:PutObject"], [_objects("artifacts")]),
        ]
    elif role == "serving":
        out = [
            _statement("ListArtifacts", ["s3:ListBucket"], [_B["artifacts"]]),
            _statement("ReadModels", ["s3:GetObject"], [_objects("artifacts", "models/")]),
        ]
    else:
        out = [
            list_both,
            _statement("ReadObjects", ["s3:GetObject"], [_objects("data"), _objects("artifacts")]),
            _statement("WriteReports", ["s3:PutObject"], [_objects("artifacts", "monitoring/")]),
            {
                **_statement("PublishMetrics", ["cloudwatch:PutMetricData"], ["*"]),
                "Condition": {"StringEquals": {"cloudwatch:namespace": f"mlc/{model_name}"}},
            },
        ]
    if cmk:
        out.append(_kms(write=role != "serving"))
    return out


def aws_permission_statements(perm: str, cmk: bool, endpoint: bool) -> list[dict[str, Any]]:
    """IAM statements granting one `security.access` permission."""
    kms = [_kms(write=perm in ("train", "approve", "admin"))] if cmk else []
    if perm == "read_data":
        return [
            _statement("ListData", ["s3:ListBucket"], [_B["data"]]),
            _statement("ReadData", ["s3:GetObject"], [_objects("data")]),
            *kms,
        ]
    if perm == "train":
        return [
            _statement("ListArtifacts", ["s3:ListBucket"], [_B["artifacts"]]),
            _statement("WriteArtifacts", ["s3:GetObject", "s3:PutObject"], [_objects("artifacts")]),
            _statement("PassTrainingRole", ["iam:PassRole"], ["aws_iam_role.training.arn"]),
            *kms,
        ]
    if perm == "deploy":
        out = [
            _statement("ReadModels", ["s3:GetObject"], [_objects("artifacts", "models/")]),
            _statement("PassServingRole", ["iam:PassRole"], ["aws_iam_role.serving.arn"]),
        ]
        if endpoint:
            out.append(
                _statement(
                    "UpdateEndpoint",
                    [
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities",
                    ],
                    [
                        "aws_sagemaker_endpoint.main.arn",
                        "arn:aws:sagemaker:${var.region}:*:endpoint-config/${local.prefix}-*",
                    ],
                )
            )
        return [*out, *kms]
    if perm == "approve":
        return [
            _statement("ReadModels", ["s3:GetObject"], [_objects("artifacts", "models/")]),
            _statement("RecordApprovals", ["s3:PutObject"], [_objects("artifacts", "approvals/")]),
            *kms,
        ]
    if perm == "admin":
        return [
            _statement(
                "ManageBuckets",
                ["s3:*"],
                [_B["data"], _B["artifacts"], _objects("data"), _objects("artifacts")],
            ),
            *kms,
        ]
    return [
        _statement(
            "ReadMetrics",
            [
                "cloudwatch:GetMetricData",
                "cloudwatch:ListMetrics",
                "cloudwatch:GetMetricStatistics",
            ],
            ["*"],
        ),
        _statement("ReadReports", ["s3:GetObject"], [_objects("artifacts", "monitoring/")]),
    ]


# -- gcp: predefined roles on buckets, service accounts and the project -------------------------

GCP_ROLE_GRANTS: dict[str, list[tuple[str, str]]] = {
    "pipeline": [("data", "roles/storage.objectAdmin"), ("artifacts", "roles/storage.objectAdmin")],
    "training": [
        ("data", "roles/storage.objectViewer"),
        ("artifacts", "roles/storage.objectAdmin"),
    ],
    "serving": [("artifacts", "roles/storage.objectViewer")],
    "monitoring": [
        ("data", "roles/storage.objectViewer"),
        ("artifacts", "roles/storage.objectViewer"),
        ("artifacts", "roles/storage.objectCreator"),
        ("project", "roles/monitoring.metricWriter"),
    ],
}
"""Workload identity -> (scope, role): scope is a bucket, `project`, or `sa:<role>`."""

GCP_PERMISSION_GRANTS: dict[str, list[tuple[str, str]]] = {
    "read_data": [("data", "roles/storage.objectViewer")],
    "train": [
        ("artifacts", "roles/storage.objectAdmin"),
        ("sa:training", "roles/iam.serviceAccountUser"),
    ],
    "deploy": [
        ("artifacts", "roles/storage.objectViewer"),
        ("sa:serving", "roles/iam.serviceAccountUser"),
    ],
    "approve": [("artifacts", "roles/storage.objectCreator")],
    "admin": [("data", "roles/storage.admin"), ("artifacts", "roles/storage.admin")],
    "view_metrics": [("project", "roles/monitoring.viewer")],
}

# -- azure: built-in role names on containers and identities -------------------------------------

AZURE_ROLE_GRANTS: dict[str, list[tuple[str, str]]] = {
    "pipeline": [
        ("data", "Storage Blob Data Contributor"),
        ("artifacts", "Storage Blob Data Contributor"),
    ],
    "training": [
        ("data", "Storage Blob Data Reader"),
        ("artifacts", "Storage Blob Data Contributor"),
    ],
    "serving": [("artifacts", "Storage Blob Data Reader")],
    "monitoring": [
        ("data", "Storage Blob Data Reader"),
        ("artifacts", "Storage Blob Data Contributor"),
        ("group", "Monitoring Metrics Publisher"),
    ],
}
AZURE_PERMISSION_GRANTS: dict[str, list[tuple[str, str]]] = {
    "read_data": [("data", "Storage Blob Data Reader")],
    "train": [
        ("artifacts", "Storage Blob Data Contributor"),
        ("sa:training", "Managed Identity Operator"),
    ],
    "deploy": [
        ("artifacts", "Storage Blob Data Reader"),
        ("sa:serving", "Managed Identity Operator"),
    ],
    "approve": [("artifacts", "Storage Blob Data Contributor")],
    "admin": [("data", "Storage Blob Data Owner"), ("artifacts", "Storage Blob Data Owner")],
    "view_metrics": [("group", "Monitoring Reader")],
}


def access_bindings(
    cloud: str, access: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Diagnostic]]:
    """`security.access` roles with parsed members; bad member forms become diagnostics."""
    out, diags = [], []
    for i, role in enumerate(access):
        members = []
        for j, member in enumerate(role["members"]):
            kind, _, ident = member.partition(":")
            if kind not in MEMBER_KINDS[cloud] or not ident:
                diags.append(
                    Diagnostic(
                        "MLC434",
                        f"member '{member}' cannot be bound on {cloud}",
                        hint="write one of "
                        + ", ".join(f"'{k}:NAME'" for k in MEMBER_KINDS[cloud]),
                        path=f"security.access[{i}].members[{j}]",
                    )
                )
                continue
            members.append(
                {
                    "member": member,
                    "kind": kind,
                    "name": ident,
                    "key": _slug(f"{role['role']}-{kind}-{ident}"),
                }
            )
        out.append(
            {
                "role": role["role"],
                "key": _slug(role["role"]),
                "permissions": sorted(role["permissions"]),
                "members": members,
            }
        )
    return out, diags


def _slug(text: str) -> str:
    """A Terraform resource name: letters, digits, underscores."""
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
