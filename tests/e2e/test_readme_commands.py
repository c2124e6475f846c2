"""The README's commands work exactly as pasted after `make run`: every ```sh block marked
`<!-- readme-commands: name -->` runs, in order and in one shell (variables carry over, as in
a terminal), from the repository's folder, against the session's mesh with the demo tenant
seeded as `make run` seeds it. Only what differs from `make run` is replaced: the mesh's
ports (free ones here) and its data folder (never .data/). Each block's output must show
what the README says it does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from services.devmesh.demo import seed_demo
from services.devmesh.mesh import ROOT, Mesh

BLOCK = re.compile(r"<!-- readme-commands: (\w+) -->\n```sh\n(.*?)```", re.S)
# What each block's output shows (README, Calling it).
SHOWS = {
    "rest": ["COFFEE-00", '"sku":"MUG-1"', "PRODUCT_NOT_FOUND", "} 404", '"field":"product.price.amountMinor"',
             "} 400", "MALFORMED_JSON", "MALFORMED_TOKEN", "}\n 401"],  # Envoy's JSON ends with a newline
    "search": ['"sku":"COFFEE-00', '"sku":"KITCHEN-003"', '"totalSize"', '"filter":"attributes.roast = \\"light\\""',
               "INVALID_FILTER", "at position 8", '"sku": "OUTDOOR-002"', "IMPORT_OUTCOME_CREATED",
               "IMPORT_OUTCOME_FAILED", '"sku":"TEA-001"', '"language":"english"', '"language": "english"'],
    "checkout": ['"status":"ORDER_STATUS_CONFIRMED"', ".eml"],
    "grpc": ["grpc.health.v1.Health", '"status": "SERVING"', '"sku": "COFFEE-00', '"status": "ORDER_STATUS_CONFIRMED"',
             '"reason":"PRODUCT_NOT_FOUND"'],
    "python": ["StatusCode.NOT_FOUND PRODUCT_NOT_FOUND"],
    "node": ['"order_status":"ORDER_STATUS_CONFIRMED"', '"reason":"MALFORMED_TOKEN"'],
}
# Lines that show a refusal or a time limit, with the exit status that is their point.
EXPECTED_FAILURES = {":watch": 28, '"product_id": "nope"': 69}  # curl --max-time; grpcurl NotFound (64 + 5)


def readme_blocks() -> dict[str, str]:
    return dict(BLOCK.findall((ROOT / "README.md").read_text()))


def test_the_readme_marks_its_command_blocks() -> None:
    assert list(readme_blocks()) == list(SHOWS)


def test_the_readmes_commands_work_as_pasted_after_make_run(mesh: Mesh) -> None:
    if shutil.which("node") is None and not os.environ.get("CI"):
        pytest.skip("node is not installed")
    provision = tuple(mesh.address_of(name) for name in mesh.settings.provision_services if name in mesh.services)
    seed_demo(mesh.edge_address, mesh.data_dir, mesh.env, ROOT, provision)
    mark = "=== README block "
    script = "trap 'echo \"FAILED $? $BASH_COMMAND\" >&2' ERR\n" + "".join(
        f"echo '{mark}{name}'\n{block}\n" for name, block in readme_blocks().items())
    for pasted, here in (("localhost:8080", mesh.edge_address), ("localhost:15052", mesh.address_of("catalog")),
                         (".data/", f"{mesh.data_dir}/")):
        script = script.replace(pasted, here)
    path = {"PATH": "/usr/local/bin:/usr/bin:/bin"}  # no .venv/bin: the README names .venv/bin/grpcurl itself
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=180, check=False, env={**os.environ, **path})
    output = done.stdout  # and what the commands wrote to stderr (grpcurl prints a refusal's details there)
    failed = re.findall(r"FAILED (\d+) (.*)", output)  # (exit status, command), wherever the output left off
    unexpected = [(code, command) for code, command in failed
                  if not any(part in command and code == str(status) for part, status in EXPECTED_FAILURES.items())]
    assert not unexpected, output
    assert len(failed) == len(EXPECTED_FAILURES), output
    assert "Traceback" not in output and "command not found" not in output, output
    outputs = dict(re.findall(rf"^{mark}(\w+)\n(.*?)(?=^{mark}|\Z)", output, flags=re.S | re.M))
    for name, shown in SHOWS.items():
        missing = [text for text in shown if text not in outputs.get(name, "")]
        assert not missing, f"README block {name!r} did not show {missing}:\n{outputs.get(name)}"
    assert Path(f"{mesh.data_dir}/demo-credentials.json").is_file()
