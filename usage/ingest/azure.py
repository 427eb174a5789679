"""Azure N-series VM sizes: GPUs per size, and the SQL that reads a size from Azure FOCUS export columns.

Units: ``gpus`` is whole GPUs per VM (fractional for the partitioned NVadsA10 v5 sizes, where a VM gets a share
of one GPU). Azure bills VM usage in hours (``ConsumedUnit`` ``Hours``, ``1 Hour`` or ``10 Hours``, read by
:mod:`usage.ingest.focus`), so GPU-hours = VM-hours x GPUs of the size.

Source of :data:`AZURE_GPU_SIZES`: the Microsoft Learn VM size pages (learn.microsoft.com/azure/virtual-machines/
sizes/gpu-accelerated/...: NCv3, NCasT4_v3, NC A100 v4, ND A100 v4, NDm A100 v4, ND H100 v5, NC H100 v5,
ND H200 v5, NDv2, NVadsA10 v5 series), read 2026-12; the GPU model names follow the catalog's spelling so usage
on Azure and AWS of the same GPU is one series. A size missing here and in the catalog is reported by name and
row count (``Standard_N...`` matches :data:`usage.ingest.readers.GPU_INSTANCE_REGEX`).

Where the size is written in an Azure FOCUS export: ``x_SkuDetails`` (the cost details' ``AdditionalInfo``) key
``ServiceType`` holds ``Standard_ND96isr_H100_v5``; ``x_SkuMeterName`` (and ``SkuMeter`` in FOCUS 1.2+) holds the
meter name ``ND96isr H100 v5`` (``... Spot`` or ``... Low Priority`` for those VMs), which
:func:`meter_size_sql` turns into the size name.
"""

from __future__ import annotations

AZURE_GPU_SIZES: dict[str, tuple[str, float]] = {
    # NCv3 (V100 16 GB)
    "Standard_NC6s_v3": ("NVIDIA Tesla V100", 1.0),
    "Standard_NC12s_v3": ("NVIDIA Tesla V100", 2.0),
    "Standard_NC24s_v3": ("NVIDIA Tesla V100", 4.0),
    "Standard_NC24rs_v3": ("NVIDIA Tesla V100", 4.0),
    # NDv2 (V100 32 GB)
    "Standard_ND40rs_v2": ("NVIDIA Tesla V100", 8.0),
    # NCasT4_v3 (T4)
    "Standard_NC4as_T4_v3": ("NVIDIA T4 Tensor Core", 1.0),
    "Standard_NC8as_T4_v3": ("NVIDIA T4 Tensor Core", 1.0),
    "Standard_NC16as_T4_v3": ("NVIDIA T4 Tensor Core", 1.0),
    "Standard_NC64as_T4_v3": ("NVIDIA T4 Tensor Core", 4.0),
    # NC A100 v4 (A100 80 GB PCIe)
    "Standard_NC24ads_A100_v4": ("NVIDIA A100", 1.0),
    "Standard_NC48ads_A100_v4": ("NVIDIA A100", 2.0),
    "Standard_NC96ads_A100_v4": ("NVIDIA A100", 4.0),
    # ND A100 v4 (A100 40 GB) and NDm A100 v4 (A100 80 GB)
    "Standard_ND96asr_v4": ("NVIDIA A100", 8.0),
    "Standard_ND96amsr_A100_v4": ("NVIDIA A100", 8.0),
    # NC H100 v5 (H100 NVL) and ND H100 v5
    "Standard_NC40ads_H100_v5": ("NVIDIA H100", 1.0),
    "Standard_NC80adis_H100_v5": ("NVIDIA H100", 2.0),
    "Standard_ND96isr_H100_v5": ("NVIDIA H100", 8.0),
    # ND H200 v5
    "Standard_ND96isr_H200_v5": ("NVIDIA H200", 8.0),
    # NVadsA10 v5 (A10, partitioned)
    "Standard_NV6ads_A10_v5": ("NVIDIA A10", 1.0 / 6.0),
    "Standard_NV12ads_A10_v5": ("NVIDIA A10", 1.0 / 3.0),
    "Standard_NV18ads_A10_v5": ("NVIDIA A10", 0.5),
    "Standard_NV36ads_A10_v5": ("NVIDIA A10", 1.0),
    "Standard_NV36adms_A10_v5": ("NVIDIA A10", 1.0),
    "Standard_NV72ads_A10_v5": ("NVIDIA A10", 2.0),
}
"""Azure GPU VM size -> (GPU model, GPUs per VM); source in the module docstring."""

METER_SUFFIXES = (" Spot", " Low Priority")


def azure_instance_gpus(known_gpu_types: set[str] | None) -> dict[str, tuple[str, float]]:
    """The sizes of :data:`AZURE_GPU_SIZES` whose GPU model the catalog knows (all when ``known_gpu_types`` is
    None); a size of an unknown GPU model stays out, so its rows are reported as types the catalog lacks."""
    return {k: v for k, v in AZURE_GPU_SIZES.items() if known_gpu_types is None or v[0] in known_gpu_types}


def meter_size_sql(text: str) -> str:
    """SQL: an Azure meter name (``ND96isr H100 v5``, ``NC24ads A100 v4 Spot``) -> ``Standard_ND96isr_H100_v5``;
    NULL unless the meter names an N-series size (text starting ``N`` + letters + digits)."""
    trimmed = text
    for suffix in METER_SUFFIXES:
        trimmed = f"regexp_replace({trimmed}, '{suffix}$', '')"
    return (f"CASE WHEN COALESCE(regexp_full_match({trimmed}, '^N[A-Z]*[0-9]+[A-Za-z]*( [A-Za-z0-9]+)*$'), FALSE) "
            f"THEN 'Standard_' || replace({trimmed}, ' ', '_') END")


def spot_meter_sql(text: str) -> str:
    """SQL: true when an Azure meter name is of a Spot or Low Priority VM."""
    return f"COALESCE(regexp_matches({text}, ' (Spot|Low Priority)$'), FALSE)"
