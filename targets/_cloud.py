"""Cloud facts for the infrastructure targets: the front end's tables plus instance names.

Regions, the GDPR region rule and accelerator types live in the front end (`mlc.specs.clouds`,
reached through `mlc.targets.base`) so that the policy pass and the targets judge a region
alike; what only targets need, the managed-endpoint instance for a set of resources, is here.

>>> is_eea_region("gcp", "europe-west1")
True
>>> "nvidia-h100" in GPU_TYPES["aws"]
True
"""

from __future__ import annotations

from mlc.targets.base import clouds, quantities

CLOUDS = clouds.CLOUDS
REGIONS = clouds.REGIONS
EEA_REGIONS = clouds.EEA_REGIONS
ADEQUACY_REGIONS = clouds.ADEQUACY_REGIONS
GPU_TYPES = clouds.GPU_TYPES
is_region = clouds.is_region
is_eea_region = clouds.is_eea_region
is_adequacy_region = clouds.is_adequacy_region
offers_gpu = clouds.offers_gpu

_DEFAULT_CORES = 1.0
"""Cores a container gets sized for when the spec sets no CPU."""
_DEFAULT_GIB = 2.0
"""GiB a container gets sized for when the spec sets no memory."""

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
    cores = quantities.cpu_cores(cpu) if cpu else _DEFAULT_CORES
    gib = quantities.memory_gib(memory) if memory else _DEFAULT_GIB
    sizes = _CPU_SIZES[cloud]
    for max_cores, max_gib, name in sizes:
        if cores <= max_cores and gib <= max_gib:
            return name
    return sizes[-1][2]
