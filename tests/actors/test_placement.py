"""Every live actor runs on its driver's node, on a cluster of two nodes.

The journal is a SQLite file in WAL mode on the driver's machine, which every live actor
opens: it works between the processes of one machine only. Ray places an actor that reserves
no CPU (ours reserve none) on a random node of the cluster (Ray's scheduling docs); before
this test, risk, the broker and the journal reader of one run landed on the other node.

A real two-node cluster (``ray.cluster_utils.Cluster``: a second raylet on this machine) in a
child process, since this session's Ray is a single node already running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, os, sys
from pathlib import Path
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
os.environ["RAY_ADDRESS"] = cluster.address
try:
    import ray
    from actors.runtime import start
    from tests.kit.live import DATA, config

    sma = {"id": "sma", "strategy": "sma_crossover", "symbols": ["ORCL"]}
    cfg = config([sma], [DATA / "ORCL.csv"], Path(sys.argv[1]), data={"start": "2012-01-01"})
    topo = start(cfg)
    late = {"id": "late", "strategy": "sma_crossover", "symbols": ["ORCL"]}
    ray.get(topo.feed.launch_strategy.remote(late), timeout=120)  # created by the feed
    status = topo.run()
    handles = {**topo.handles, "strategy:late": ray.get_actor("strategy:late",
                                                              namespace="raytrader")}
    print(json.dumps({
        "driver": ray.get_runtime_context().get_node_id(),
        "nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]),
        "actors": {name: ray.get(h.node_id.remote()) for name, h in handles.items()},
        "state": status["state"],
    }))
    topo.stop()
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.timeout(240)
def test_every_live_actor_runs_on_the_drivers_node_of_a_two_node_cluster(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "journal.sqlite")],
                          cwd=ROOT, capture_output=True, text=True, timeout=200)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["nodes"]) == 2 and out["driver"] in out["nodes"]
    assert out["state"] == "done"
    names = {"journal", "feed", "broker", "risk", "strategy:sma", "strategy:late"}
    assert set(out["actors"]) == names
    elsewhere = {name for name, node in out["actors"].items() if node != out["driver"]}
    assert elsewhere == set(), f"on the other node: {sorted(elsewhere)}"
