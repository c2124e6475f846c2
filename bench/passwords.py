"""python -m bench.passwords: memory of password hashing, to size the tenant pod's limit.

Argon2 (argon2-cffi's defaults, as the tenant service uses them) holds ``memory_cost`` KiB per
hash while it runs. For each cap K this runs 4·K verifications at once through the service's
own ``Passwords`` (one process per K, so each peak is its own) and prints the process's peak
resident memory (VmHWM) above its base (the tenant service's modules imported). The tenant
pod's memory limit is: base of a serving tenant process + K x (memory per hash) + margin
(deploy/README.md, "Memory of the tenant pods")."""

from __future__ import annotations

import asyncio
import subprocess
import sys


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


async def _measure(cap: int) -> tuple[int, int]:
    import services.tenant.app  # noqa: F401 - the service's libraries, as in the real process
    from services.tenant.passwords import Passwords

    passwords = Passwords(concurrency=cap, queue_seconds=600)
    stored = await passwords.hash("measure")
    base = _kib("VmRSS")
    await asyncio.gather(*(passwords.verify(stored, "measure") for _ in range(4 * cap)))
    await passwords.close()
    return base, _kib("VmHWM")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        base, peak = asyncio.run(_measure(int(sys.argv[2])))
        print(base, peak)
        return 0
    print(f"{'cap':>4} {'base MiB':>9} {'peak MiB':>9} {'per hash MiB':>13}")
    for cap in (1, 2, 4):
        out = subprocess.run([sys.executable, "-m", "bench.passwords", "--one", str(cap)], capture_output=True,
                             text=True, check=True).stdout.split()
        base_mib, peak_mib = int(out[0]) / 1024, int(out[1]) / 1024
        print(f"{cap:>4} {base_mib:>9.0f} {peak_mib:>9.0f} {(peak_mib - base_mib) / cap:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
