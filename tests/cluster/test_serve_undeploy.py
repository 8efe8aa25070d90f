"""``cluster.serve.undeploy`` on the real Serve in the session's Ray: the token file always
goes; Serve that ``deploy`` started is shut down, unless it runs in a Ray that ends with the
process (``leave_serve``: ``raytrader demo`` on its own in-process Ray)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cluster.serve import Deployed, _serve_running, undeploy
from tests.kit.control import free_port


@pytest.mark.timeout(120)
def test_undeploy_removes_the_token_file_and_leaves_or_stops_serve(ray_session) -> None:
    from ray import serve

    serve.shutdown()
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    try:
        folder = tempfile.mkdtemp(prefix="raytrader-api-")
        (Path(folder) / "tokens").write_text("t: secret\n")
        started = Deployed(url="http://127.0.0.1", token_dir=folder, started_serve=True)

        undeploy(started, leave_serve=True)
        assert not Path(folder).exists()
        assert _serve_running()  # left to end with the process that started Ray

        undeploy(Deployed(url="http://127.0.0.1", started_serve=True))
        assert not _serve_running()
    finally:
        serve.shutdown()
