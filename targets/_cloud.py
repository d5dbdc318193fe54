"""Facts about clouds that several targets share: regions, EU regions, GPU types, instance names.

A plain data module (no imports beyond the standard library) so that the terraform, kserve/k8s
and monitoring targets and the cost model can read it cheaply. The lists name what the clouds
offer publicly; a region or accelerator missing here is reported as unknown, so extend the
tables when a cloud adds one.

>>> is_eu_region("gcp", "europe-west1")
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

EU_REGIONS: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
        }
    ),
    "gcp": frozenset(
        {
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
            "northeurope",
            "norwayeast",
            "polandcentral",
            "spaincentral",
            "swedencentral",
            "swedensouth",
            "switzerlandnorth",
            "uksouth",
            "ukwest",
            "westeurope",
        }
    ),
}
"""Regions in Europe (EU/EEA plus the UK and Switzerland, which GDPR adequacy covers)."""

OUTSIDE_EEA: frozenset[str] = frozenset(
    {"eu-west-2", "eu-central-2", "europe-west2", "europe-west6", "uksouth", "ukwest"}
    | {"switzerlandnorth"}
)
"""Regions of `EU_REGIONS` in the UK or Switzerland: adequate for GDPR transfers, but outside
the EU/EEA that an "EU regions only" policy asks for."""

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

# Managed-endpoint instance names: (aws SageMaker family, gcp Vertex machine, azure ML size).
_AWS_GPU_ML = {
    "g4dn": "ml.g4dn.xlarge",
    "g5": "ml.g5.xlarge",
    "g6": "ml.g6.xlarge",
    "g6e": "ml.g6e.xlarge",
    "p3": "ml.p3.2xlarge",
    "p4d": "ml.p4d.24xlarge",
    "p5": "ml.p5.48xlarge",
}
_GCP_GPU_MACHINE = {
    "n1-standard": "n1-standard-8",
    "g2-standard": "g2-standard-8",
    "a2-highgpu": "a2-highgpu-1g",
    "a2-ultragpu": "a2-ultragpu-1g",
    "a3-highgpu": "a3-highgpu-8g",
}
_CPU_SIZES: dict[str, tuple[tuple[float, float, str], ...]] = {
    # (max cores, max GiB, instance) in ascending order; the first that fits is chosen.
    "aws": (
        (2, 8, "ml.m5.large"),
        (4, 16, "ml.m5.xlarge"),
        (8, 32, "ml.m5.2xlarge"),
        (16, 64, "ml.m5.4xlarge"),
        (48, 192, "ml.m5.12xlarge"),
    ),
    "gcp": (
        (2, 8, "n1-standard-2"),
        (4, 15, "n1-standard-4"),
        (8, 30, "n1-standard-8"),
        (16, 60, "n1-standard-16"),
        (32, 120, "n1-standard-32"),
    ),
    "azure": (
        (2, 8, "Standard_DS2_v2"),
        (4, 14, "Standard_DS3_v2"),
        (8, 28, "Standard_DS4_v2"),
        (16, 56, "Standard_DS5_v2"),
        (32, 128, "Standard_D32s_v3"),
    ),
}
_MEMORY_UNITS = {
    "Ki": 2**-20,
    "Mi": 2**-10,
    "Gi": 1,
    "Ti": 2**10,
    "K": 1e3 / 2**30,
    "M": 1e6 / 2**30,
    "G": 1e9 / 2**30,
    "T": 1e12 / 2**30,
    "": 2**-30,
}


def is_region(cloud: str, region: str) -> bool:
    """True when `region` exists for `cloud`."""
    return region in REGIONS.get(cloud, frozenset())


def is_eu_region(cloud: str, region: str) -> bool:
    """True when `region` of `cloud` lies in Europe (UK and Switzerland included)."""
    return region in EU_REGIONS.get(cloud, frozenset())


def is_eea_region(cloud: str, region: str) -> bool:
    """True when `region` of `cloud` lies in the EU/EEA (UK and Switzerland excluded)."""
    return is_eu_region(cloud, region) and region not in OUTSIDE_EEA


def offers_gpu(cloud: str, gpu_type: str) -> bool:
    """True when `cloud` offers accelerator `gpu_type`."""
    return gpu_type in GPU_TYPES.get(cloud, {})


def cpu_cores(quantity: str | None) -> float:
    """Kubernetes CPU quantity -> cores (`"500m"` -> 0.5); 1 core when unset."""
    if not quantity:
        return 1.0
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_gib(quantity: str | None) -> float:
    """Kubernetes memory quantity -> GiB (`"512Mi"` -> 0.5); 2 GiB when unset."""
    if not quantity:
        return 2.0
    digits = quantity.rstrip("KMGTi")
    return float(digits) * _MEMORY_UNITS[quantity[len(digits) :]]


def managed_instance(
    cloud: str, cpu: str | None, memory: str | None, gpu_type: str | None = None
) -> str:
    """The managed-endpoint instance (SageMaker, Vertex AI, Azure ML) for these resources.

    >>> managed_instance("aws", "1", "2Gi")
    'ml.m5.large'
    >>> managed_instance("aws", "4", "16Gi", "nvidia-tesla-t4")
    'ml.g4dn.xlarge'
    """
    if gpu_type is not None:
        family = GPU_TYPES[cloud][gpu_type]
        if cloud == "aws":
            return _AWS_GPU_ML[family]
        if cloud == "gcp":
            return _GCP_GPU_MACHINE[family]
        return family
    cores, gib = cpu_cores(cpu), memory_gib(memory)
    sizes = _CPU_SIZES[cloud]
    for max_cores, max_gib, name in sizes:
        if cores <= max_cores and gib <= max_gib:
            return name
    return sizes[-1][2]
