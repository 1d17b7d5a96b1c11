"""Cost estimates for paid compute: the per-GPU price tables and the GPU tier ladders.

Estimates are upper bounds (price per hour x the run's timeout), so a plan that fits the cap in
the estimate cannot overspend it. Never read a price from anywhere but these tables and config.
"""

from __future__ import annotations

from . import config
from .errors import ConfigError
from .runners import PROFILES

# Modal's published on-demand GPU prices in USD per hour (modal.com/pricing, late 2025), per GPU,
# container CPU/memory not included. Override any row with the `modal_gpu_prices` config key,
# e.g. `rstack config set modal_gpu_prices "H100=4.10,A10G=1.20"`.
MODAL_GPU_USD_PER_HOUR: dict[str, float] = {
    "T4": 0.59,
    "L4": 0.80,
    "A10G": 1.10,
    "L40S": 1.95,
    "A100-40GB": 2.10,
    "A100-80GB": 2.50,
    "H100": 3.95,
    "H200": 4.54,
    "B200": 6.25,
}
# A CPU-only Modal function (gpu: null): two physical cores' worth, rounded up.
MODAL_CPU_USD_PER_HOUR = 0.10

# The OOM ladder's last rung moves to the next tier. Ordered by memory, then speed.
MODAL_GPU_TIERS: tuple[str, ...] = ("T4", "L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100",
                                    "H200", "B200")
VASTAI_GPU_TIERS: tuple[str, ...] = ("RTX_3060", "RTX_3090", "RTX_4090", "RTX_A6000", "L40S",
                                     "A100_PCIE", "A100_SXM4", "H100_PCIE", "H100_SXM", "H200")


def modal_prices() -> dict[str, float]:
    """The Modal price table with the `modal_gpu_prices` config overrides applied."""
    table = dict(MODAL_GPU_USD_PER_HOUR)
    for item in config.get("modal_gpu_prices"):
        name, sep, price = item.partition("=")
        try:
            value = float(price)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or value < 0:
            raise ConfigError(f"config modal_gpu_prices: {item!r} is not GPU=USD_PER_HOUR",
                              hint='rstack config set modal_gpu_prices "H100=3.95,A10G=1.10"')
        table[name.strip()] = value
    return table


def usd_per_hour(profile: str, gpu: str | None) -> float:
    """The hourly price a run on this profile is estimated at (0 for local and ssh hosts)."""
    if profile in ("local", "ssh", "slurm"):  # your own machines, or an allocation (max_gpu_hours)
        return 0.0
    if profile == "modal":
        if not gpu:
            return MODAL_CPU_USD_PER_HOUR
        table = modal_prices()
        if gpu not in table:
            raise ConfigError(
                f"no Modal price for GPU {gpu!r}; known: {', '.join(sorted(table))}",
                hint=f'pick a listed GPU, or add its price: rstack config set modal_gpu_prices "{gpu}=PRICE"')
        return table[gpu]
    if profile == "vastai":
        # Offers are searched with this ceiling, so it bounds what the instance can cost.
        return float(config.get("vastai_max_dph"))
    raise ConfigError(f"unknown profile {profile!r}", hint="use one of " + ", ".join(PROFILES))


# A rented Vast.ai instance bills from `create` to `destroy`, not only while a run executes: per
# run, the code upload, the polling after the timeout and the verified download; per instance,
# the boot (bounded by vastai_start_timeout_s) and the teardown. Worst cases, in seconds.
VASTAI_RUN_OVERHEAD_S = 120.0
VASTAI_TEARDOWN_S = 60.0


def estimate_run_usd(profile: str, gpu: str | None, timeout_s: float) -> float:
    """Upper bound for one run: hourly price x its timeout (on vastai, plus the run's share of
    the instance's sync time, which bills too)."""
    seconds = float(timeout_s) + (VASTAI_RUN_OVERHEAD_S if profile == "vastai" else 0.0)
    return round(usd_per_hour(profile, gpu) * seconds / 3600.0, 6)


def instance_overhead_usd(profile: str, gpus) -> float:
    """Upper bound of what the machines cost beyond their runs: on vastai, each instance (one per
    GPU type) bills its boot and teardown. 0 for profiles that bill per run."""
    if profile != "vastai":
        return 0.0
    seconds = float(config.get("vastai_start_timeout_s")) + VASTAI_TEARDOWN_S
    return round(len(set(gpus)) * usd_per_hour(profile, None) * seconds / 3600.0, 6)


def next_gpu_tier(profile: str, gpu: str | None) -> str | None:
    """The next larger GPU on this profile's ladder, or None at the top / off the ladder."""
    tiers = MODAL_GPU_TIERS if profile == "modal" else VASTAI_GPU_TIERS if profile == "vastai" else ()
    if gpu not in tiers:
        return None
    index = tiers.index(gpu)
    return tiers[index + 1] if index + 1 < len(tiers) else None
