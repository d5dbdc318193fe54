"""Facts about clouds that the front end, the passes and the targets share.

Region names per cloud, which of them lie in the EU/EEA or in a country with an EU adequacy
decision (the GDPR region rule), and the accelerator types each cloud offers. A plain data
module (standard library only): the spec language, the policy pass, the cost model and the
terraform, kserve and k8s targets (through `mlc.targets.base`) read the same tables. The lists
name what the clouds offer publicly; a region or accelerator missing here is reported as
unknown, so extend the tables when a cloud adds one.

>>> is_eea_region("gcp", "europe-west1"), is_eea_region("aws", "eu-west-2")
(True, False)
>>> gdpr_region_ok("aws", "eu-west-2", allow_adequacy=True)
True
>>> "nvidia-h100" in GPU_TYPES["aws"]
True
"""

from __future__ import annotations

CLOUDS = ("aws", "gcp", "azure")
"""Clouds that infrastructure targets can provision (`onprem` has no cloud resources)."""

REGIONS: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {
            "af-south-1",
            "ap-east-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        }
    ),
    "gcp": frozenset(
        {
            "africa-south1",
            "asia-east1",
            "asia-east2",
            "asia-northeast1",
            "asia-northeast2",
            "asia-northeast3",
            "asia-south1",
            "asia-south2",
            "asia-southeast1",
            "asia-southeast2",
            "australia-southeast1",
            "australia-southeast2",
            "europe-central2",
            "europe-north1",
            "europe-southwest1",
            "europe-west1",
            "europe-west10",
            "europe-west12",
            "europe-west2",
            "europe-west3",
            "europe-west4",
            "europe-west6",
            "europe-west8",
            "europe-west9",
            "me-central1",
            "me-central2",
            "me-west1",
            "northamerica-northeast1",
            "northamerica-northeast2",
            "southamerica-east1",
            "southamerica-west1",
            "us-central1",
            "us-east1",
            "us-east4",
            "us-east5",
            "us-south1",
            "us-west1",
            "us-west2",
            "us-west3",
            "us-west4",
        }
    ),
    "azure": frozenset(
        {
            "australiacentral",
            "australiaeast",
            "australiasoutheast",
            "austriaeast",
            "belgiumcentral",
            "brazilsouth",
            "canadacentral",
            "canadaeast",
            "centralindia",
            "centralus",
            "denmarkeast",
            "eastasia",
            "eastus",
            "eastus2",
            "francecentral",
            "francesouth",
            "germanynorth",
            "germanywestcentral",
            "italynorth",
            "japaneast",
            "japanwest",
            "koreacentral",
            "koreasouth",
            "northcentralus",
            "northeurope",
            "norwayeast",
            "polandcentral",
            "qatarcentral",
            "southafricanorth",
            "southcentralus",
            "southeastasia",
            "southindia",
            "spaincentral",
            "swedencentral",
            "swedensouth",
            "switzerlandnorth",
            "uaenorth",
            "uksouth",
            "ukwest",
            "westcentralus",
            "westeurope",
            "westus",
            "westus2",
            "westus3",
        }
    ),
}
"""Region names per cloud, spelled as each cloud's API and Terraform provider spell them."""

EEA_REGIONS: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {
            "eu-central-1",  # Frankfurt
            "eu-north-1",  # Stockholm
            "eu-south-1",  # Milan
            "eu-south-2",  # Spain
            "eu-west-1",  # Ireland
            "eu-west-3",  # Paris
        }
    ),
    "gcp": frozenset(
        {
            "europe-central2",  # Warsaw
            "europe-north1",  # Finland
            "europe-southwest1",  # Madrid
            "europe-west1",  # Belgium
            "europe-west10",  # Berlin
            "europe-west12",  # Turin
            "europe-west3",  # Frankfurt
            "europe-west4",  # Netherlands
            "europe-west8",  # Milan
            "europe-west9",  # Paris
        }
    ),
    "azure": frozenset(
        {
            "austriaeast",
            "belgiumcentral",
            "denmarkeast",
            "francecentral",
            "francesouth",
            "germanynorth",
            "germanywestcentral",
            "italynorth",
            "northeurope",  # Ireland
            "norwayeast",  # Norway is in the EEA
            "polandcentral",
            "spaincentral",
            "swedencentral",
            "swedensouth",
            "westeurope",  # Netherlands
        }
    ),
}
"""Regions in the EU/EEA, where `compliance: [gdpr]` places data and serving by default."""

ADEQUACY_REGIONS: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {
            "ap-northeast-1",  # Tokyo
            "ap-northeast-2",  # Seoul
            "ap-northeast-3",  # Osaka
            "ca-central-1",  # Montreal
            "ca-west-1",  # Calgary
            "eu-central-2",  # Zurich
            "eu-west-2",  # London
            "il-central-1",  # Tel Aviv
        }
    ),
    "gcp": frozenset(
        {
            "asia-northeast1",  # Tokyo
            "asia-northeast2",  # Osaka
            "asia-northeast3",  # Seoul
            "europe-west2",  # London
            "europe-west6",  # Zurich
            "me-west1",  # Tel Aviv
            "northamerica-northeast1",  # Montreal
            "northamerica-northeast2",  # Toronto
        }
    ),
    "azure": frozenset(
        {
            "canadacentral",
            "canadaeast",
            "japaneast",
            "japanwest",
            "koreacentral",
            "koreasouth",
            "switzerlandnorth",
            "uksouth",
            "ukwest",
        }
    ),
}
"""Regions outside the EU/EEA in a country the European Commission has an adequacy decision
for (United Kingdom, Switzerland, Japan, Republic of Korea, Israel, Canada): GDPR lets personal
data go there, but only a spec that says so (`governance.data_residency.allow_adequacy`) places
it there. The United States are not listed: the EU-US Data Privacy Framework covers certified
organisations, not a region."""

EEA_REGION_PREFIXES = ("eu-", "europe-")
"""How the clouds name European regions; judges region names of clouds without tables."""

GPU_TYPES: dict[str, dict[str, str]] = {
    "aws": {
        "nvidia-tesla-t4": "g4dn",
        "nvidia-a10g": "g5",
        "nvidia-l4": "g6",
        "nvidia-l40s": "g6e",
        "nvidia-tesla-v100": "p3",
        "nvidia-a100": "p4d",
        "nvidia-h100": "p5",
    },
    "gcp": {
        "nvidia-tesla-t4": "n1-standard",
        "nvidia-tesla-p4": "n1-standard",
        "nvidia-tesla-p100": "n1-standard",
        "nvidia-tesla-v100": "n1-standard",
        "nvidia-l4": "g2-standard",
        "nvidia-tesla-a100": "a2-highgpu",
        "nvidia-a100": "a2-highgpu",
        "nvidia-a100-80gb": "a2-ultragpu",
        "nvidia-h100": "a3-highgpu",
        "nvidia-h100-80gb": "a3-highgpu",
    },
    "azure": {
        "nvidia-tesla-t4": "Standard_NC4as_T4_v3",
        "nvidia-tesla-v100": "Standard_NC6s_v3",
        "nvidia-a10": "Standard_NV36ads_A10_v5",
        "nvidia-a100": "Standard_NC24ads_A100_v4",
        "nvidia-h100": "Standard_NC40ads_H100_v5",
    },
}
"""Accelerator type (as the spec writes it) -> the instance family or size that carries it."""


def is_region(cloud: str, region: str) -> bool:
    """True when `region` exists for `cloud`."""
    return region in REGIONS.get(cloud, frozenset())


def is_eea_region(cloud: str, region: str) -> bool:
    """True when `region` of `cloud` lies in the EU/EEA (UK and Switzerland excluded)."""
    return region in EEA_REGIONS.get(cloud, frozenset())


def is_adequacy_region(cloud: str, region: str) -> bool:
    """True when `region` of `cloud` lies in a country with an EU adequacy decision."""
    return region in ADEQUACY_REGIONS.get(cloud, frozenset())


def gdpr_region_ok(cloud: str | None, region: str, *, allow_adequacy: bool = False) -> bool:
    """Whether GDPR lets a spec store and serve in `region`: EU/EEA, or adequacy if allowed.

    For aws, gcp and azure the tables decide. Other clouds (`onprem`) name regions freely: a
    name any of the three clouds uses is judged by its table, and otherwise a name like an EU
    one (`eu-…`, `europe-…`) counts as EU/EEA.

    >>> gdpr_region_ok("aws", "eu-west-1"), gdpr_region_ok("aws", "eu-west-2")
    (True, False)
    >>> gdpr_region_ok("onprem", "eu-south-3"), gdpr_region_ok("onprem", "eu-west-2")
    (True, False)
    >>> gdpr_region_ok("gcp", "europe-west6", allow_adequacy=True)
    True
    """
    clouds = [cloud] if cloud in REGIONS else list(CLOUDS)
    if any(is_eea_region(c, region) for c in clouds):
        return True
    if any(is_adequacy_region(c, region) for c in clouds):
        return allow_adequacy
    if cloud in REGIONS:
        return False
    return region.startswith(EEA_REGION_PREFIXES)


def offers_gpu(cloud: str, gpu_type: str) -> bool:
    """True when `cloud` offers accelerator `gpu_type`."""
    return gpu_type in GPU_TYPES.get(cloud, {})
